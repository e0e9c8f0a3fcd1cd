/**
 * Typed errors. Native code maps each failure kind to one of these classes (the classes are handed
 * to the addon when it loads), so `err instanceof ShapeError` works for native and JS checks alike.
 */
export class CmaeError extends Error {
  /** Stable machine-readable code, e.g. `ERR_CMAE_SHAPE`. */
  readonly code: string = 'ERR_CMAE';
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
/** A tensor or array has the wrong shape or length. */
export class ShapeError extends CmaeError {
  override readonly code = 'ERR_CMAE_SHAPE';
}
/** A tensor has the wrong element type. */
export class DTypeError extends CmaeError {
  override readonly code = 'ERR_CMAE_DTYPE';
}
/** A tensor is on the wrong device, or the device is not available. */
export class DeviceError extends CmaeError {
  override readonly code = 'ERR_CMAE_DEVICE';
}
/** An argument has an invalid value (range, type, option). */
export class ValueError extends CmaeError {
  override readonly code = 'ERR_CMAE_VALUE';
}
/** A file is not in the expected format (safetensors header, IDX magic, ...). */
export class FormatError extends CmaeError {
  override readonly code = 'ERR_CMAE_FORMAT';
}
/** Reading or writing a file failed. */
export class IOError extends CmaeError {
  override readonly code = 'ERR_CMAE_IO';
}
/** The object was disposed and can no longer be used. */
export class DisposedError extends CmaeError {
  override readonly code = 'ERR_CMAE_DISPOSED';
}
/** The object is already running an asynchronous call that must finish first. */
export class BusyError extends CmaeError {
  override readonly code = 'ERR_CMAE_BUSY';
}
/** The operation was cancelled through an AbortSignal. */
export class AbortError extends CmaeError {
  override readonly code = 'ERR_CMAE_ABORTED';
}
/** A data-parallel job failed: a rank died, hangs or disagrees, or the collective engine is missing. */
export class DistributedError extends CmaeError {
  override readonly code = 'ERR_CMAE_DISTRIBUTED';
}
/** The compiled addon could not be loaded. */
export class AddonLoadError extends CmaeError {
  override readonly code = 'ERR_CMAE_ADDON';
}

/** The classes the native addon instantiates, by name. */
export const nativeErrorClasses = {
  CmaeError,
  ShapeError,
  DTypeError,
  DeviceError,
  ValueError,
  FormatError,
  IOError,
  DisposedError,
  BusyError,
  AbortError,
  DistributedError,
};
