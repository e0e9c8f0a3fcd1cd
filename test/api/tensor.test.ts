import { describe, expect, it } from 'vitest';
import { DTypeError, DeviceError, DisposedError, ShapeError, Tensor, getNumThreads, info, kernels, setNumThreads } from '../../src/index';

describe('Tensor', () => {
  it('round-trips float32 and int32 data as a copy and as a zero-copy view', () => {
    const data = Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 3);
    const t = Tensor.from(data, [3, 4]);
    expect(t.shape).toEqual([3, 4]);
    expect(t.dtype).toBe('float32');
    expect(t.device).toBe('cpu');
    expect(Array.from(t.toArray())).toEqual(Array.from(data));
    const view = t.view();
    view[5] = 42;
    expect(t.toArray()[5]).toBe(42); // the view aliases native memory
    const ints = Tensor.from(Int32Array.from([1, -2, 3]), [3]);
    expect(ints.dtype).toBe('int32');
    expect(Array.from(ints.toArray())).toEqual([1, -2, 3]);
  });

  it('checks device names, and refuses CUDA where no device is usable', () => {
    // (test/cuda/model.test.ts covers tensors on a CUDA device, on the emulated one.)
    expect(Tensor.zeros([2], 'float32', { device: 'cpu' }).device).toBe('cpu');
    expect(() => Tensor.zeros([2], 'float32', { device: 'cuda:x' as 'cuda' })).toThrowError(DeviceError);
    expect(() => Tensor.zeros([2], 'float32', { device: 'cuda:x' as 'cuda' })).toThrowError(/unknown device 'cuda:x'/);
    expect(() => Tensor.zeros([2]).to('gpu' as 'cuda')).toThrowError(/unknown device 'gpu' \(expected 'cpu', 'cuda' or 'cuda:N'\)/);
    if (info().cuda.devices.length === 0) {
      expect(() => Tensor.zeros([2], 'float32', { device: 'cuda' })).toThrowError(DeviceError);
      expect(() => Tensor.zeros([2]).to('cuda')).toThrowError(/device 'cuda' is not available/);
    }
  });

  it('views stay valid after dispose (they hold the memory)', () => {
    const t = Tensor.full([1000], 7);
    const view = t.view();
    t.dispose();
    expect(view[999]).toBe(7);
  });

  it('throws typed errors on bad shapes, lengths and dtypes', () => {
    expect(() => Tensor.from(new Float32Array(5), [2, 3])).toThrowError(ShapeError);
    expect(() => Tensor.from(new Float32Array(5), [2, 3])).toThrowError(/5 elements but shape \[2, 3\] needs 6/);
    expect(() => Tensor.from(new Float32Array(4), [2, -2])).toThrowError(/shape\[1\] must be a non-negative integer/);
    expect(() => Tensor.from(new Float64Array(4) as unknown as Float32Array, [4])).toThrowError(DTypeError);
    expect(() => Tensor.empty([2], 'float16' as 'float32')).toThrowError(DTypeError);
  });

  it('a disposed tensor gives DisposedError in JS and in native calls', () => {
    const t = Tensor.full([4], 1);
    const out = Tensor.empty([4]);
    t.dispose();
    t.dispose(); // idempotent
    expect(t.disposed).toBe(true);
    expect(() => t.toArray()).toThrowError(DisposedError);
    expect(() => kernels.geluForward(t, out)).toThrowError(DisposedError);
    // The handle itself also refuses (the native check, not only the TS one).
    expect(() => kernels.geluForward(out, t)).toThrowError(/disposed/);
  });

  it('native errors are instances of the exported classes', () => {
    const a = Tensor.full([2, 3], 1);
    try {
      kernels.geluForward(a, Tensor.empty([6]));
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ShapeError);
      expect((error as ShapeError).code).toBe('ERR_CMAE_SHAPE');
    }
  });
});

describe('runtime', () => {
  it('reports build facts', () => {
    const i = info();
    expect(i.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(['portable', 'avx2', 'avx512']).toContain(i.isa);
    expect(i.threads).toBeGreaterThanOrEqual(1);
    expect(typeof i.cuda.compiled).toBe('boolean');
    expect(i.cuda.status.length).toBeGreaterThan(0);
  });

  it('sets and restores the thread count', () => {
    const before = getNumThreads();
    setNumThreads(1);
    expect(getNumThreads()).toBe(1);
    setNumThreads(0);
    expect(getNumThreads()).toBeGreaterThanOrEqual(1);
    setNumThreads(before);
    expect(() => setNumThreads(-1)).toThrowError(/threads must be an integer/);
  });
});
