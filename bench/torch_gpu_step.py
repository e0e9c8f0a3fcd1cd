#!/usr/bin/env python3
"""The PyTorch side of the GPU step bench (scripts/gpu-check.sh runs both in one go): the
project's own PyTorch reference CMAE (test/reference/make_fixtures.py) in eager mode on a device,
timed as `cmae_model_check --bench` times cmae's step (lossAndGrad + AdamW + EMA, warm-up, then
the mean of N steps between two device synchronisations). One JSON line per configuration.

    python3 bench/torch_gpu_step.py --presets FILE [--device cuda] [--steps 10]
                                    [--configs tiny:64,tiny:256,base:64,base:256] [--precisions fp32,tf32,bf16]

FILE is `cmae_model_check --print-presets` output (src/models/config.ts owns the presets). bf16 is
autocast (master weights and optimizer state float32, as cmae's bf16 products); tf32 is
torch.backends.cuda.matmul.allow_tf32. Not a package dependency: the GPU machine has PyTorch.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'test', 'reference'))

import torch  # noqa: E402

import make_fixtures as ref  # noqa: E402  (sets float64 / 1 thread / deterministic: undone below)

torch.set_default_dtype(torch.float32)
torch.use_deterministic_algorithms(False)
torch.set_num_threads(os.cpu_count() or 1)


def config(presets: dict, name: str, mode: str) -> ref.Config:
    c = dict(presets[name], mode=mode)
    if mode == 'mae':  # the CLI's MAE defaults (spec §5): 75 % per patch
        c.update(maskRatio=0.75, maskGroup=1)
    names = {f.name for f in ref.fields(ref.Config)}
    return ref.Config(**{k: v for k, v in c.items() if k in names})


def step_fn(cfg: ref.Config, batch: int, device: torch.device, precision: str):
    model = ref.CMAE(cfg).to(device)
    decay = [p for n, p in model.named_parameters() if p.requires_grad and ref.decays(n, model)]
    other = [p for n, p in model.named_parameters() if p.requires_grad and not ref.decays(n, model)]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.05}, {'params': other, 'weight_decay': 0.0}],
                            lr=1.5e-4, betas=(0.9, 0.95), eps=1e-8)
    S, C = cfg.imageSize, cfg.channels
    groups = (cfg.grid // cfg.maskGroup) ** 2
    images = torch.randn(batch, C, S, S, device=device)
    target = torch.randn(batch, C, S, S, device=device)
    model.train()

    def run():
        opt.zero_grad(set_to_none=True)
        noise = torch.rand(batch, groups, device=device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == 'bf16'):
            out = model(images, noise, target if cfg.mode == 'cmae' else None)
        out['loss'].backward()
        opt.step()
        if cfg.mode == 'cmae':
            model.momentum_update(0.996)
        return out['loss']
    return run


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--presets', required=True)
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--configs', default='tiny:64,tiny:256,base:64,base:256')
    parser.add_argument('--precisions', default='fp32,tf32,bf16')
    args = parser.parse_args()
    with open(args.presets) as f:
        presets = json.load(f)
    device = torch.device(args.device)
    label = f'torch {torch.__version__} {device.type}'
    if device.type == 'cuda':
        label += f' ({torch.cuda.get_device_name(device)})'
    for item in args.configs.split(','):
        name, batch = item.split(':')
        for mode in ('cmae', 'mae'):
            for precision in args.precisions.split(','):
                what = f'{label} {name} {mode} B={batch} {precision}'
                try:
                    if device.type == 'cuda':
                        torch.backends.cuda.matmul.allow_tf32 = precision == 'tf32'
                        torch.backends.cudnn.allow_tf32 = precision == 'tf32'
                    run = step_fn(config(presets, name, mode), int(batch), device, precision)
                    for _ in range(2):  # warm-up: allocator, kernels' first launches
                        run()
                    synchronize(device)
                    t0 = time.perf_counter()
                    for _ in range(args.steps):
                        loss = run()
                    synchronize(device)
                    seconds = (time.perf_counter() - t0) / args.steps
                    print(json.dumps({'torch_bench': what, 'ms_per_step': round(seconds * 1e3, 3),
                                      'images_per_s': round(int(batch) / seconds, 1), 'last_loss': float(loss)}), flush=True)
                except Exception as e:  # noqa: BLE001  (report and go on: e.g. out of memory at base B=256 fp32)
                    print(json.dumps({'torch_bench': what, 'error': str(e)[:300]}), flush=True)
                    if device.type == 'cuda':
                        torch.cuda.empty_cache()


if __name__ == '__main__':
    main()
