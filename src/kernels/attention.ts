// attention kernels: filled in by the op family's implementation.
export {};
