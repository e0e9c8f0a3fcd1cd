#!/usr/bin/env python3
"""PyTorch side of `npm run bench -- --torch` (bench/main.mjs). Not a package dependency.

Run with Debian's interpreter (/usr/bin/python3 + python3-torch). main.mjs starts one process per
thread count with OMP_NUM_THREADS, OPENBLAS_NUM_THREADS (OpenBLAS ignores torch.set_num_threads)
and OMP_WAIT_POLICY=PASSIVE set, writes a JSON spec on stdin and reads one JSON document from
stdout: {"torch": version, "threads": n, "results": {id: timing}}.

The model is the project's own PyTorch reference (test/reference/make_fixtures.py), run in float32
eagerly, so both sides do exactly the same job. Timings are medians of repeated runs after a warm-up.
"""
from __future__ import annotations

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'test', 'reference'))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import make_fixtures as ref  # noqa: E402  (sets float64 / 1 thread / deterministic: undone below)

torch.set_default_dtype(torch.float32)
torch.use_deterministic_algorithms(False)
THREADS = int(os.environ.get('OMP_NUM_THREADS', '1'))
torch.set_num_threads(THREADS)
torch.manual_seed(0)


def stats(samples):
    s = sorted(samples)
    n = len(s)

    def q(p):
        return s[min(n - 1, max(0, int(round(p * (n - 1)))))]
    return {'median': q(0.5), 'p10': q(0.1), 'p90': q(0.9), 'min': s[0], 'max': s[-1], 'n': n}


def time_it(fn, reps, warmup_s, min_rep_s):
    """Seconds per call: warm up for warmup_s, pick an inner count so one rep >= min_rep_s."""
    t0 = time.perf_counter()
    calls = 0
    while calls < 2 or time.perf_counter() - t0 < warmup_s:
        fn()
        calls += 1
    per = (time.perf_counter() - t0) / calls
    inner = max(1, int(min_rep_s / max(per, 1e-9)))
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        out.append((time.perf_counter() - t) / inner)
    return stats(out)


def rnd(*shape):
    return torch.randn(*shape)


# ---- GEMMs ------------------------------------------------------------------------------------

def gemm_case(g):
    M, N, K, op = g['M'], g['N'], g['K'], g['op']
    if op == 'fwd':  # out[M,N] = x[M,K] · W[N,K]ᵀ + b (F.linear = addmm)
        x, w, b = rnd(M, K), rnd(N, K) * 0.05, rnd(N)
        return lambda: F.linear(x, w, b)
    if op == 'bwd_data':  # dinp[M,N] = dout[M,K] · W[K,N]
        d, w, out = rnd(M, K), rnd(K, N) * 0.05, torch.empty(M, N)
        return lambda: torch.matmul(d, w, out=out)
    if op == 'bwd_weight':  # dW[M,N] += dout[K,M]ᵀ · x[K,N]
        d, x, dw = rnd(K, M) * 0.05, rnd(K, N), torch.zeros(M, N)
        return lambda: dw.addmm_(d.t(), x)
    raise ValueError(op)


# ---- other kernels ----------------------------------------------------------------------------

def autograd_pair(make):
    """make() -> (inputs requiring grad, output); returns (fwd, bwd) callables."""
    def fwd():
        with torch.no_grad():
            make(False)
    inputs, out = make(True)
    g = torch.randn_like(out)

    def bwd():
        for t in inputs:
            t.grad = None
        out.backward(g, retain_graph=True)
    return fwd, bwd


def attention_eager(qkv, heads):
    b, n, c3 = qkv.shape
    c = c3 // 3
    q, k, v = qkv.reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    attn = ((q @ k.transpose(-2, -1)) * (c // heads) ** -0.5).softmax(dim=-1)
    return (attn @ v).transpose(1, 2).reshape(b, n, c)


def kernel_case(k):
    kind, p = k['kind'], k['params']
    if kind in ('layernorm_fwd', 'layernorm_bwd'):
        R, C = p['R'], p['C']
        x0, w0, b0 = rnd(R, C), torch.ones(C), torch.zeros(C)

        def make(grad):
            x, w, b = (t.clone().requires_grad_(grad) for t in (x0, w0, b0))
            return (x, w, b), F.layer_norm(x, (C,), w, b, 1e-6)
        f, b = autograd_pair(make)
        return f if kind.endswith('fwd') else b
    if kind in ('attention_fwd', 'attention_bwd'):
        B, N, D, H = p['B'], p['N'], p['D'], p['H']
        q0 = rnd(B, N, 3 * D)

        def make(grad):
            q = q0.clone().requires_grad_(grad)
            return (q,), attention_eager(q, H)
        f, b = autograd_pair(make)
        return f if kind.endswith('fwd') else b
    if kind == 'residual_ln':
        R, C = p['R'], p['C']
        a, b, w, bb = rnd(R, C), rnd(R, C), torch.ones(C), torch.zeros(C)

        def run():
            with torch.no_grad():
                s = a + b
                return s, F.layer_norm(s, (C,), w, bb, 1e-6)
        return run
    kind = {'gelu_fast_fwd': 'gelu_fwd', 'gelu_fast_bwd': 'gelu_bwd'}.get(kind, kind)
    if kind in ('gelu_fwd', 'gelu_bwd'):
        x0 = rnd(p['n'])

        def make(grad):
            x = x0.clone().requires_grad_(grad)
            return (x,), F.gelu(x)
        f, b = autograd_pair(make)
        return f if kind.endswith('fwd') else b
    if kind == 'mask_gather':
        B, grid, group, D, ratio = p['B'], p['grid'], p['group'], p['D'], p['maskRatio']
        G = (grid // group) ** 2
        tokens, pos = rnd(B, grid * grid, D), rnd(1, grid * grid, D)

        def run():
            noise = torch.rand(B, G)
            ids_keep, ids_restore, mask = ref.group_masking(noise, grid, group, ratio)
            x = tokens + pos
            return torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, D))
        return run
    if kind in ('unshuffle_fwd', 'unshuffle_bwd'):
        B, L, K, D = p['B'], p['L'], p['K'], p['D']
        ids_restore = torch.stack([torch.randperm(L) for _ in range(B)])
        x0, tok0, pos = rnd(B, 1 + K, D), rnd(1, 1, D), rnd(1, 1 + L, D)

        def make(grad):
            x, tok = x0.clone().requires_grad_(grad), tok0.clone().requires_grad_(grad)
            mask_tokens = tok.expand(B, L + 1 - x.shape[1], D)
            x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
            x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, D))
            return (x, tok), torch.cat([x[:, :1, :], x_], dim=1) + pos
        f, b = autograd_pair(make)
        return f if kind.endswith('fwd') else b
    if kind == 'normpix':
        B, L, P, p_size, C = p['B'], p['L'], p['P'], p['patch'], p['C']
        S = int(round(L ** 0.5)) * p_size
        imgs, pred0 = rnd(B, C, S, S), rnd(B, L, P)
        mask = (torch.rand(B, L) < 0.65).float()

        def run():
            pred = pred0.clone().requires_grad_(True)
            ref.norm_pix_loss(imgs, pred, mask, p_size, True).backward()
        return run
    if kind == 'infonce':
        B, E, tau = p['B'], p['E'], p['tau']
        q0, k = rnd(B, E), rnd(B, E)
        labels = torch.arange(B)

        def run():
            q = q0.clone().requires_grad_(True)
            logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).t() / tau
            (2 * tau * F.cross_entropy(logits, labels)).backward()
        return run
    if kind in ('batchnorm_fwd', 'batchnorm_bwd'):
        B, C = p['B'], p['C']
        x0, w0, b0 = rnd(B, C), torch.ones(C), torch.zeros(C)
        rm, rv = torch.zeros(C), torch.ones(C)

        def make(grad):
            x, w, b = (t.clone().requires_grad_(grad) for t in (x0, w0, b0))
            return (x, w, b), F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-6)
        f, b = autograd_pair(make)
        return f if kind.endswith('fwd') else b
    if kind == 'adamw':
        n = p['n']
        param = torch.nn.Parameter(rnd(n) * 0.02)
        param.grad = rnd(n) * 1e-3
        opt = torch.optim.AdamW([param], lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.05)
        return opt.step
    if kind == 'ema':
        n, m = p['n'], 0.996
        tgt, src = rnd(n), rnd(n)
        return lambda: tgt.mul_(m).add_(src, alpha=1 - m)
    raise ValueError(kind)


# ---- end to end ------------------------------------------------------------------------------

def e2e_case(e):
    cfg = ref.Config(**{k: v for k, v in e['config'].items() if k in {f.name for f in ref.fields(ref.Config)}})
    B = e['batch']
    S, C = cfg.imageSize, cfg.channels
    G = (cfg.grid // cfg.maskGroup) ** 2
    model = ref.CMAE(cfg)
    imgs, target = rnd(B, C, S, S), rnd(B, C, S, S)
    if e['kind'] == 'encode':
        model.eval()

        def run():
            with torch.no_grad():
                x = ref.encoder_forward(model, imgs, None)
                return x[:, 0]
        return run
    decay = [p for n, p in model.named_parameters() if p.requires_grad and ref.decays(n, model)]
    other = [p for n, p in model.named_parameters() if p.requires_grad and not ref.decays(n, model)]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.05}, {'params': other, 'weight_decay': 0.0}],
                            lr=1.5e-4, betas=(0.9, 0.95), eps=1e-8)
    model.train()

    def run():
        opt.zero_grad(set_to_none=True)
        out = model(imgs, torch.rand(B, G), target if cfg.mode == 'cmae' else None)
        out['loss'].backward()
        opt.step()
        if cfg.mode == 'cmae':
            model.momentum_update(0.996)
    return run


def blas_library():
    """The BLAS shared object this process loaded (after a matmul), from /proc/self/maps."""
    try:
        with open('/proc/self/maps') as f:
            libs = {line.split()[-1] for line in f if 'blas' in line.lower() and '/' in line}
        return ', '.join(sorted(os.path.realpath(p) for p in libs)) or 'unknown'
    except OSError:
        return 'unknown'


def main():
    spec = json.load(sys.stdin)
    reps, warm, min_rep = spec.get('reps', 9), spec.get('warmup', 0.3), spec.get('minRep', 0.005)
    results = {}
    # Warm the clock and OpenBLAS threads up on a large GEMM first (machine-notes: ~0.5 s).
    a = rnd(1024, 1024)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.5:
        a @ a
    for g in spec.get('gemms', []):
        results[g['id']] = time_it(gemm_case(g), reps, warm * 0.3, min_rep)
    for k in spec.get('kernels', []):
        results[k['id']] = time_it(kernel_case(k), reps, warm * 0.3, min_rep)
    for e in spec.get('e2e', []):
        results[e['id']] = time_it(e2e_case(e), e.get('reps', reps), e.get('warmup', 1.0), 0)
    json.dump({'torch': torch.__version__, 'threads': THREADS, 'blas': blas_library(), 'results': results}, sys.stdout)


if __name__ == '__main__':
    main()
