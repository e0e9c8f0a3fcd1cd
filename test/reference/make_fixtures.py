#!/usr/bin/env python3
"""PyTorch reference model for cmae and generator of the golden test fixtures.

Run by hand (never by CI); see test/reference/README.md.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /usr/bin/python3 test/reference/make_fixtures.py
        writes test/fixtures/{cmae,mae,mocov3,maskdistill,simclr,densecl}_micro.{safetensors,json},
        classifier_{cls,mean}_micro.{safetensors,json} and the timm-layout fixture
        (--only cmae|mae|mocov3|maskdistill|simclr|densecl|timm|classifier, repeatable: just those)

    ... make_fixtures.py --check-checkpoint CKPT.safetensors --images IMAGES.safetensors [--prefix P] [--out F]
        prints the encoder's cls and mean-pooled patch features (no masking, final norm applied)

The model is a self-contained re-implementation of OUR CMAE/MAE/MoCo v3/MaskDistill/SimCLR (method-spec.md §1, §2, with the
project's masking rule and state-dict names). Everything is computed in float64; the weights and
inputs are first rounded to float32 so that the native float32 model starts from the exact same
values. Only torch + numpy + the standard library are used (safetensors I/O is hand written).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# =================================================================================================
# Minimal safetensors I/O (format: u64 LE header length N, N bytes JSON header, raw LE data)

_ST_DTYPES = {
    'F32': (torch.float32, np.float32),
    'F64': (torch.float64, np.float64),
    'I32': (torch.int32, np.int32),
    'I64': (torch.int64, np.int64),
    'U8': (torch.uint8, np.uint8),
    'F16': (torch.float16, np.float16),
}


def write_safetensors(path: str, tensors: dict, metadata: dict | None = None) -> None:
    """tensors: name -> (dtype string, tensor). Tensors sorted by name, contiguous offsets,
    header padded with spaces to a multiple of 8 bytes, written atomically."""
    header: dict = {}
    if metadata:
        assert all(isinstance(v, str) for v in metadata.values())
        header['__metadata__'] = dict(metadata)
    blobs = []
    offset = 0
    for name in sorted(tensors):
        dt, t = tensors[name]
        tdtype, ndtype = _ST_DTYPES[dt]
        arr = t.detach().cpu().to(tdtype).contiguous().numpy().astype(np.dtype(ndtype).newbyteorder('<'))
        b = arr.tobytes()
        header[name] = {'dtype': dt, 'shape': list(arr.shape), 'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    hb = json.dumps(header, separators=(',', ':')).encode('utf-8')
    hb += b' ' * ((-len(hb)) % 8)
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(len(hb).to_bytes(8, 'little'))
        f.write(hb)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_safetensors(path: str):
    """Returns (dict name -> (dtype string, torch tensor), metadata dict)."""
    with open(path, 'rb') as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f'{path}: shorter than 8 bytes')
    n = int.from_bytes(raw[:8], 'little')
    if n > len(raw) - 8:
        raise ValueError(f'{path}: header length {n} larger than the file')
    header = json.loads(raw[8:8 + n].decode('utf-8'))
    data = raw[8 + n:]
    meta = header.pop('__metadata__', {}) or {}
    out = {}
    for name, e in header.items():
        dt = e['dtype']
        if dt not in _ST_DTYPES:
            raise ValueError(f'{path}: tensor {name}: unsupported dtype {dt}')
        b, end = e['data_offsets']
        arr = np.frombuffer(data[b:end], dtype=np.dtype(_ST_DTYPES[dt][1]).newbyteorder('<')).reshape(e['shape'])
        out[name] = (dt, torch.from_numpy(arr.astype(_ST_DTYPES[dt][1]).copy()))
    return out, meta


# =================================================================================================
# Configuration (field names = the `config` JSON that cmae stores in checkpoint metadata)

LN_EPS = 1e-6  # every LayerNorm
NORM_PIX_EPS = 1e-6  # norm-pix loss: (x − μ) / sqrt(var_unbiased + eps)


@dataclass
class Config:
    """Same fields as src/models/config.ts ModelConfig (cmae.create() rejects unknown keys)."""
    mode: str = 'cmae'
    imageSize: int = 16
    channels: int = 3
    patchSize: int = 4
    dim: int = 32
    depth: int = 2
    heads: int = 2
    mlpRatio: float = 4
    decoderDim: int = 24
    decoderDepth: int = 1
    decoderHeads: int = 2
    featureDecoderDim: int = 24
    featureDecoderDepth: int = 1
    featureDecoderHeads: int = 2
    projectorHidden: int = 64
    projectorDim: int = 16
    # training-only settings (not needed to rebuild the network)
    maskRatio: float = 0.65
    maskGroup: int = 2  # 1 = per-patch (MAE), 2 = 2×2 groups (CMAE)
    tau: float = 0.07
    ctWeight: float = 1.0
    rcWeight: float = 1.0
    normPixLoss: bool = True
    bnEps: float = 1e-6
    bnMomentum: float = 0.1
    denseWeight: float | None = None  # DenseCL only (λ); absent from the other methods' configs

    @property
    def grid(self) -> int:
        return self.imageSize // self.patchSize

    @property
    def num_patches(self) -> int:
        return self.grid ** 2

    @classmethod
    def from_json(cls, s: str) -> 'Config':
        d = json.loads(s)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# =================================================================================================
# Model (timm/MAE state-dict names)

def sincos_pos_embed(width: int, grid: int) -> torch.Tensor:
    """(1 + grid², width) MAE layout (§1.4): row 0 (cls) zeros; for patch k (row i = k // grid,
    col j = k % grid): [sin(j·ω), cos(j·ω), sin(i·ω), cos(i·ω)], ω_d = 10000^(−d/Q), Q = width/4."""
    assert width % 4 == 0
    q = width // 4
    omega = 1.0 / (10000.0 ** (torch.arange(q, dtype=torch.float64) / q))
    k = torch.arange(grid * grid, dtype=torch.float64)
    i = torch.div(k, grid, rounding_mode='floor')
    j = k - i * grid
    emb = torch.cat([torch.sin(j[:, None] * omega), torch.cos(j[:, None] * omega),
                     torch.sin(i[:, None] * omega), torch.cos(i[:, None] * omega)], dim=1)
    return torch.cat([torch.zeros(1, width, dtype=torch.float64), emb], dim=0)


class Attention(nn.Module):
    """Fused qkv Linear (bias): output feature index = s·C + h·hd + d with s ∈ {q, k, v}."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        assert dim % heads == 0
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact erf form
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """timm pre-norm block: y = x + attn(norm1(x)); out = y + mlp(norm2(y))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, scales=None):
        """scales (2, B) or None: drop path's per-sample factors on the attention and MLP branches
        (timm's DropPath with its Bernoulli draws given, so the native model's can be replayed)."""
        if scales is None:
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        x = x + scales[0].view(-1, 1, 1) * self.attn(self.norm1(x))
        return x + scales[1].view(-1, 1, 1) * self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.proj = nn.Conv2d(cfg.channels, cfg.dim, cfg.patchSize, stride=cfg.patchSize, bias=True)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, L, D), patch k = row·grid + col


class ViTEncoder(nn.Module):
    """Stand-alone encoder (used for the momentum encoder and for --check-checkpoint)."""

    def __init__(self, cfg: Config, final_norm: bool):
        super().__init__()
        build_encoder(self, cfg, final_norm)

    def forward(self, imgs, ids_keep=None):
        return encoder_forward(self, imgs, ids_keep)


def build_encoder(m: nn.Module, cfg: Config, final_norm: bool) -> None:
    m.patch_embed = PatchEmbed(cfg)
    m.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
    m.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.num_patches, cfg.dim), requires_grad=False)
    m.blocks = nn.ModuleList([Block(cfg.dim, cfg.heads, cfg.mlpRatio, LN_EPS) for _ in range(cfg.depth)])
    if final_norm:
        m.norm = nn.LayerNorm(cfg.dim, eps=LN_EPS)


def encoder_forward(m: nn.Module, imgs, ids_keep=None, final_norm: bool = True, drop_scales=None):
    """(B, 1+K, D): cls + visible tokens (ids_keep order), final norm if the module has one (and
    final_norm); drop_scales (depth, 2, B): drop path's factors (Block.forward)."""
    x = m.patch_embed(imgs) + m.pos_embed[:, 1:, :]
    if ids_keep is not None:
        x = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    cls = (m.cls_token + m.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1)
    for i, blk in enumerate(m.blocks):
        x = blk(x, None if drop_scales is None else drop_scales[i])
    if final_norm and hasattr(m, 'norm'):
        x = m.norm(x)
    return x


def build_decoder(m: nn.Module, prefix: str, cfg: Config, width: int, depth: int, heads: int, out: int) -> None:
    setattr(m, prefix + 'decoder_embed', nn.Linear(cfg.dim, width))
    setattr(m, prefix + 'mask_token', nn.Parameter(torch.zeros(1, 1, width)))
    setattr(m, prefix + 'decoder_pos_embed',
            nn.Parameter(torch.zeros(1, 1 + cfg.num_patches, width), requires_grad=False))
    setattr(m, prefix + 'decoder_blocks',
            nn.ModuleList([Block(width, heads, cfg.mlpRatio, LN_EPS) for _ in range(depth)]))
    setattr(m, prefix + 'decoder_norm', nn.LayerNorm(width, eps=LN_EPS))
    setattr(m, prefix + 'decoder_pred', nn.Linear(width, out))


def decoder_forward(m: nn.Module, prefix: str, latent, ids_restore):
    """§1.5: embed (all rows incl. cls), append mask tokens, unshuffle, prepend cls, + pos,
    blocks, norm, pred, drop cls → (B, L, out)."""
    g = lambda n: getattr(m, prefix + n)  # noqa: E731
    x = g('decoder_embed')(latent)
    b, n1, w = x.shape
    L = ids_restore.shape[1]
    mask_tokens = g('mask_token').expand(b, L + 1 - n1, w)
    x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
    x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, w))
    x = torch.cat([x[:, :1, :], x_], dim=1) + g('decoder_pos_embed')
    for blk in g('decoder_blocks'):
        x = blk(x)
    x = g('decoder_pred')(g('decoder_norm')(x))
    return x[:, 1:, :]


class Head(nn.Module):
    """Projector / predictor: Linear(bias) → BatchNorm1d (train mode) → ReLU → Linear(no bias)."""

    def __init__(self, cfg: Config, din: int, hidden: int, dout: int):
        super().__init__()
        self.fc1 = nn.Linear(din, hidden)
        self.bn = nn.BatchNorm1d(hidden, eps=cfg.bnEps, momentum=cfg.bnMomentum)
        self.fc2 = nn.Linear(hidden, dout, bias=False)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))


class DenseHead(nn.Module):
    """DenseCL's dense projector per token (its 1×1 convolutions): Linear → ReLU → Linear, both with bias."""

    def __init__(self, din: int, hidden: int, dout: int):
        super().__init__()
        self.fc1 = nn.Linear(din, hidden)
        self.fc2 = nn.Linear(hidden, dout)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def group_masking(noise, grid: int, group: int, mask_ratio: float):
    """Project rule (§2.2 + brief): noise (B, G), G = (grid/group)²; keep the int(G·(1−r)) groups
    with the smallest noise (stable sort: ties → lower group index); patch (r, c) is in group
    (r//group)·(grid/group) + c//group; ids_keep = kept patches ascending; ids_restore = inverse of
    [kept ascending, masked ascending]; mask 1 = masked. group = 1 is per-patch masking."""
    b, G = noise.shape
    gg = grid // group
    assert grid % group == 0 and G == gg * gg, 'mask noise must have (grid/group)² columns'
    keep_groups = int(G * (1 - mask_ratio))
    order = torch.sort(noise, dim=1, stable=True).indices
    keep_g = torch.zeros(b, G, dtype=torch.int64)
    keep_g.scatter_(1, order[:, :keep_groups], 1)
    r = torch.arange(grid)
    group_of_patch = ((r[:, None] // group) * gg + (r[None, :] // group)).reshape(-1)  # (L,)
    keep = keep_g[:, group_of_patch]  # (B, L)
    L = grid * grid
    K = keep_groups * group * group
    key = (1 - keep) * L + torch.arange(L)[None, :]
    ids_shuffle = torch.argsort(key, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :K]
    mask = (1 - keep).to(torch.float64)
    return ids_keep, ids_restore, mask


def patchify(imgs, p: int):
    """(B, C, H, W) → (B, L, p·p·C), element (py·p + px)·C + c."""
    b, c, h, w = imgs.shape
    x = imgs.reshape(b, c, h // p, p, w // p, p)
    x = torch.einsum('nchpwq->nhwpqc', x)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def norm_pix_loss(imgs, pred, mask, p: int, normalize: bool = True):
    target = patchify(imgs, p)
    if normalize:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True, unbiased=True)
        target = (target - mean) / (var + NORM_PIX_EPS) ** 0.5
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum()


class CMAE(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        mode = cfg.mode
        assert mode in ('cmae', 'mae', 'mocov3', 'maskdistill', 'simclr', 'densecl')
        self.cfg, self.mode = cfg, mode
        pp = cfg.patchSize ** 2 * cfg.channels
        build_encoder(self, cfg, final_norm=True)
        if mode not in ('mocov3', 'simclr', 'densecl'):  # MaskDistill's decoder predicts the teacher's D features per patch
            build_decoder(self, '', cfg, cfg.decoderDim, cfg.decoderDepth, cfg.decoderHeads,
                          cfg.dim if mode == 'maskdistill' else pp)
        if mode == 'cmae':
            build_decoder(self, 'feature_', cfg, cfg.featureDecoderDim, cfg.featureDecoderDepth,
                          cfg.featureDecoderHeads, cfg.dim)
        heads = mode in ('cmae', 'mocov3', 'densecl')
        if heads or mode == 'simclr':
            self.projector = Head(cfg, cfg.dim, cfg.projectorHidden, cfg.projectorDim)
        if heads:
            self.predictor = Head(cfg, cfg.projectorDim, cfg.projectorHidden, cfg.projectorDim)
        if mode not in ('mae', 'simclr'):  # MaskDistill's teacher is the momentum encoder
            self.momentum_encoder = ViTEncoder(cfg, final_norm=False)
        if heads:
            self.momentum_projector = Head(cfg, cfg.dim, cfg.projectorHidden, cfg.projectorDim)
        if mode == 'densecl':
            self.dense_projector = DenseHead(cfg.dim, cfg.projectorHidden, cfg.projectorDim)
            self.momentum_dense_projector = DenseHead(cfg.dim, cfg.projectorHidden, cfg.projectorDim)
        for name, p in self.named_parameters():
            if name.startswith('momentum_'):
                p.requires_grad_(False)

    # --- init (§1.7 + perturbation) -------------------------------------------------------------
    @torch.no_grad()
    def initialize_weights(self, perturb: float) -> None:
        cfg = self.cfg
        self.pos_embed.copy_(sincos_pos_embed(cfg.dim, cfg.grid)[None])
        if hasattr(self, 'decoder_pos_embed'):
            self.decoder_pos_embed.copy_(sincos_pos_embed(cfg.decoderDim, cfg.grid)[None])
        if self.mode == 'cmae':
            self.feature_decoder_pos_embed.copy_(sincos_pos_embed(cfg.featureDecoderDim, cfg.grid)[None])
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        if hasattr(self, 'mask_token'):
            nn.init.normal_(self.mask_token, std=0.02)
        if self.mode == 'cmae':
            nn.init.normal_(self.feature_mask_token, std=0.02)
        for name, mod in self.named_modules():
            if name.startswith('momentum_'):
                continue
            if isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
            elif isinstance(mod, (nn.LayerNorm, nn.BatchNorm1d)):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)
        # Perturb every LN/BN affine parameter and every Linear bias so their gradients are exercised.
        for name, mod in self.named_modules():
            if name.startswith('momentum_'):
                continue
            if isinstance(mod, (nn.LayerNorm, nn.BatchNorm1d)):
                mod.weight.add_(torch.empty_like(mod.weight).uniform_(-perturb, perturb))
                mod.bias.add_(torch.empty_like(mod.bias).uniform_(-perturb, perturb))
            elif isinstance(mod, nn.Linear) and mod.bias is not None:
                mod.bias.add_(torch.empty_like(mod.bias).uniform_(-perturb, perturb))
        # Momentum branch = copy of the online encoder (without norm.*) and projector.
        if hasattr(self, 'momentum_encoder'):
            online = self.state_dict()
            for n, t in self.momentum_encoder.state_dict().items():
                t.copy_(online[n])
            if hasattr(self, 'momentum_projector'):
                for n, t in self.momentum_projector.state_dict().items():
                    t.copy_(online['projector.' + n])
            if hasattr(self, 'momentum_dense_projector'):
                for n, t in self.momentum_dense_projector.state_dict().items():
                    t.copy_(online['dense_projector.' + n])
        # Round every parameter and buffer to float32 (then keep computing in float64).
        for t in list(self.parameters()) + list(self.buffers()):
            if t.is_floating_point():
                t.copy_(t.float().double())

    # --- forward --------------------------------------------------------------------------------
    def forward(self, images, mask_noise, target_images=None):
        cfg = self.cfg
        if self.mode == 'mocov3':
            return self.forward_mocov3(images, target_images, mask_noise)
        if self.mode == 'maskdistill':
            return self.forward_maskdistill(images, mask_noise)
        if self.mode == 'simclr':
            return self.forward_simclr(images, target_images, mask_noise)
        if self.mode == 'densecl':
            return self.forward_densecl(images, target_images, mask_noise)
        ids_keep, ids_restore, mask = group_masking(mask_noise, cfg.grid, cfg.maskGroup, cfg.maskRatio)
        latent = encoder_forward(self, images, ids_keep)
        pred = decoder_forward(self, '', latent, ids_restore)
        loss_rc = norm_pix_loss(images, pred, mask, cfg.patchSize, cfg.normPixLoss)
        out = dict(ids_keep=ids_keep, ids_restore=ids_restore, mask=mask, latent=latent, pred=pred,
                   loss_rc=loss_rc, loss=cfg.rcWeight * loss_rc)
        if self.mode == 'mae':
            return out
        feat = decoder_forward(self, 'feature_', latent, ids_restore)  # (B, L, D)
        z_s = self.projector(feat.mean(dim=1))
        q = self.predictor(z_s)
        with torch.no_grad():
            tgt = encoder_forward(self.momentum_encoder, target_images, None)  # no final norm
            target_feature = tgt[:, 1:, :].mean(dim=1)
            z_t = self.momentum_projector(target_feature)
        logits = F.normalize(q, dim=1) @ F.normalize(z_t.detach(), dim=1).t() / cfg.tau
        loss_ct = 2 * cfg.tau * F.cross_entropy(logits, torch.arange(q.shape[0]))
        out.update(feature_pred=feat, z_s=z_s, q=q, target_feature=target_feature, z_t=z_t,
                   loss_ct=loss_ct, loss=cfg.rcWeight * loss_rc + cfg.ctWeight * loss_ct)
        return out

    def forward_simclr(self, x1, x2, mask_noise):
        """SimCLR on CMAE's parts: both views online (mask_noise (2B, G) as MoCo v3's), mean of patch
        tokens without the final norm → projector over all 2B rows at once (one BatchNorm) → z;
        NT-Xent: row i's positive is its other view, its candidates all 2B − 1 other rows."""
        cfg = self.cfg
        B = x1.shape[0]
        ids_keep, ids_restore, mask = group_masking(mask_noise, cfg.grid, cfg.maskGroup, cfg.maskRatio)
        latent = encoder_forward(self, torch.cat([x1, x2]), ids_keep, final_norm=False)
        pooled = latent[:, 1:, :].mean(dim=1)
        z = self.projector(pooled)
        zn = F.normalize(z, dim=1)
        logits = zn @ zn.t() / cfg.tau
        logits = logits.masked_fill(torch.eye(2 * B, dtype=torch.bool), float('-inf'))
        labels = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)])
        loss_ct = F.cross_entropy(logits, labels)
        return dict(ids_keep=ids_keep, ids_restore=ids_restore, mask=mask, latent=latent, q=z, loss_ct=loss_ct,
                    loss=cfg.ctWeight * loss_ct)

    def forward_maskdistill(self, images, mask_noise):
        """MAE's online path whose decoder predicts the teacher's patch tokens (the momentum encoder on
        the whole image, no final norm), standardised per token with the norm-pix rule (unbiased
        variance, eps 1e-6), MSE at the masked positions."""
        cfg = self.cfg
        ids_keep, ids_restore, mask = group_masking(mask_noise, cfg.grid, cfg.maskGroup, cfg.maskRatio)
        latent = encoder_forward(self, images, ids_keep)
        pred = decoder_forward(self, '', latent, ids_restore)  # (B, L, D)
        with torch.no_grad():
            teacher = encoder_forward(self.momentum_encoder, images, None)[:, 1:, :]
        target = teacher
        if cfg.normPixLoss:
            target = (target - target.mean(dim=-1, keepdim=True)) / (target.var(dim=-1, keepdim=True) + NORM_PIX_EPS) ** 0.5
        loss_rc = (((pred - target) ** 2).mean(dim=-1) * mask).sum() / mask.sum()
        return dict(ids_keep=ids_keep, ids_restore=ids_restore, mask=mask, latent=latent, pred=pred,
                    target_feature=teacher, loss_rc=loss_rc, loss=cfg.rcWeight * loss_rc)

    def forward_mocov3(self, x1, x2, mask_noise):
        """MoCo v3 on CMAE's parts (native/model/cmae_model.h says where it differs from the paper):
        the online encoder sees the visible patches of both views (mask_noise (2B, G): view 1's rows,
        then view 2's), pooled as the mean of patch tokens without the final norm; the momentum
        encoder sees both views whole. Heads run per view (BatchNorm statistics per view, view 1
        first, as MoCo v3's two forward calls); L = 2τ·(CE(q1, k2) + CE(q2, k1))."""
        cfg = self.cfg
        B = x1.shape[0]
        ids_keep, ids_restore, mask = group_masking(mask_noise, cfg.grid, cfg.maskGroup, cfg.maskRatio)
        latent = encoder_forward(self, torch.cat([x1, x2]), ids_keep, final_norm=False)
        pooled = latent[:, 1:, :].mean(dim=1)
        with torch.no_grad():
            tgt = encoder_forward(self.momentum_encoder, torch.cat([x2, x1]), None)  # row i: the other view
            target_feature = tgt[:, 1:, :].mean(dim=1)
        z_s, q, z_t, loss_ct = [], [], [], 0.0
        for v in range(2):
            rows = slice(v * B, (v + 1) * B)
            z_s.append(self.projector(pooled[rows]))
            q.append(self.predictor(z_s[-1]))
            with torch.no_grad():
                z_t.append(self.momentum_projector(target_feature[rows]))
            logits = F.normalize(q[-1], dim=1) @ F.normalize(z_t[-1], dim=1).t() / cfg.tau
            loss_ct = loss_ct + 2 * cfg.tau * F.cross_entropy(logits, torch.arange(B))
        return dict(ids_keep=ids_keep, ids_restore=ids_restore, mask=mask, latent=latent, z_s=torch.cat(z_s),
                    q=torch.cat(q), target_feature=target_feature, z_t=torch.cat(z_t), loss_ct=loss_ct,
                    loss=cfg.ctWeight * loss_ct)

    def forward_densecl(self, x1, x2, mask_noise):
        """DenseCL on MoCo v3 (native/model/cmae_model.h says where it differs from the paper): MoCo v3's
        global loss weighted 1 − λ, plus λ· a dense InfoNCE per view: every online visible token
        (no final norm) → dense projector → q; the momentum tokens of the other view → its EMA twin
        → k; the positive of token i is k at argmax_j cos(online token i, momentum token j) (the
        backbone features, DenseCL's correspondence; the first maximum on ties), the negatives the
        view's other images' normalize(mean_j k_j); CE scaled by 2τ, mean over tokens."""
        cfg = self.cfg
        B, lam = x1.shape[0], cfg.denseWeight
        out = self.forward_mocov3(x1, x2, mask_noise)
        tokens = out['latent'][:, 1:, :]  # (2B, K, D)
        with torch.no_grad():
            m_tokens = encoder_forward(self.momentum_encoder, torch.cat([x2, x1]), None)[:, 1:, :]  # (2B, L, D)
            k_dense = self.momentum_dense_projector(m_tokens)
            sim = F.normalize(tokens, dim=-1) @ F.normalize(m_tokens, dim=-1).transpose(1, 2)  # (2B, K, L)
            match = sim.argmax(dim=2)
        q_dense = self.dense_projector(tokens)
        loss_dense = 0.0
        for v in range(2):
            rows = slice(v * B, (v + 1) * B)
            q = F.normalize(q_dense[rows], dim=-1)  # (B, K, E)
            k = F.normalize(k_dense[rows], dim=-1)
            k_pos = torch.gather(k, 1, match[rows].unsqueeze(-1).expand(-1, -1, k.shape[-1]))
            l_pos = (q * k_pos).sum(-1, keepdim=True)  # (B, K, 1)
            neg = F.normalize(k_dense[rows].mean(dim=1), dim=-1)  # (B, E): the pooled dense keys
            l_neg = (q @ neg.t()).masked_fill(torch.eye(B, dtype=torch.bool)[:, None, :], float('-inf'))  # own image out
            logits = torch.cat([l_pos, l_neg], dim=-1).reshape(-1, 1 + B) / cfg.tau
            loss_dense = loss_dense + 2 * cfg.tau * F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long))
        loss_ct = (1 - lam) * out['loss_ct'] + lam * loss_dense
        out.update(match=match, q_dense=q_dense, loss_dense=loss_dense, loss_ct=loss_ct, loss=cfg.ctWeight * loss_ct)
        return out

    @torch.no_grad()
    def momentum_update(self, m: float) -> None:
        """EMA by name: momentum_encoder.X ← m·X_t + (1−m)·X for every trainable encoder parameter
        (norm.* has no twin; pos_embed is frozen and identical), momentum_projector likewise for
        fc1.weight, fc1.bias, bn.weight, bn.bias, fc2.weight. BN running stats are not EMA'd."""
        online = dict(self.named_parameters())
        pairs = [('', self.momentum_encoder)]
        if hasattr(self, 'momentum_projector'):
            pairs.append(('projector.', self.momentum_projector))
        if hasattr(self, 'momentum_dense_projector'):
            pairs.append(('dense_projector.', self.momentum_dense_projector))
        for prefix, mod in pairs:
            for n, pt in mod.named_parameters():
                po = online[prefix + n]
                if po.requires_grad:
                    pt.mul_(m).add_(po, alpha=1 - m)


def state_names(model: nn.Module) -> dict:
    """All parameters and buffers except BN num_batches_tracked."""
    return {n: t for n, t in model.state_dict(keep_vars=True).items() if not n.endswith('num_batches_tracked')}


def decays(name: str, model: CMAE) -> bool:
    """Weight decay only for Linear weights and the patch-embed conv weight."""
    if name == 'patch_embed.proj.weight':
        return True
    mod_name, _, leaf = name.rpartition('.')
    return leaf == 'weight' and isinstance(model.get_submodule(mod_name), nn.Linear)


# =================================================================================================
# Fixtures

LR, BETAS, ADAM_EPS, WD, EMA_M, STEPS, BATCH, PERTURB = 1e-3, (0.9, 0.95), 1e-8, 0.05, 0.996, 3, 4, 0.1


def make_inputs(cfg: Config, gen: torch.Generator, n_groups: int, noise_rows: int = BATCH):
    """Smooth random patterns + noise, rounded to float32. Image 0, patch 0 is constant (exercises
    the norm-pix eps path: var = 0)."""
    B, C, S = BATCH, cfg.channels, cfg.imageSize
    yy, xx = torch.meshgrid(torch.arange(S, dtype=torch.float64), torch.arange(S, dtype=torch.float64), indexing='ij')

    def images():
        a = torch.rand(B, C, 1, 1, generator=gen) * 2 - 1
        fy = torch.rand(B, C, 1, 1, generator=gen) * 0.6
        fx = torch.rand(B, C, 1, 1, generator=gen) * 0.6
        ph = torch.rand(B, C, 1, 1, generator=gen) * 6.283
        smooth = a * torch.sin(fy * yy + fx * xx + ph)
        return smooth + 0.5 * torch.randn(B, C, S, S, generator=gen)

    imgs = images()
    imgs[0, :, :cfg.patchSize, :cfg.patchSize] = 0.5
    target = images()
    noise = torch.rand(noise_rows, n_groups, generator=gen)
    r = lambda t: t.float().double()  # noqa: E731
    return r(imgs), r(target), r(noise)


def self_test() -> None:
    """Cross-check the hand-written pieces against independent formulations."""
    gen = torch.Generator().manual_seed(123)
    # 1. Attention block == nn.MultiheadAttention with the same (fused q;k;v) weights.
    blk = Block(24, 2, 4.0, 1e-6)
    x = torch.randn(3, 7, 24, generator=gen)
    mha = nn.MultiheadAttention(24, 2, bias=True, batch_first=True)
    with torch.no_grad():
        for p in blk.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        mha.in_proj_weight.copy_(blk.attn.qkv.weight)
        mha.in_proj_bias.copy_(blk.attn.qkv.bias)
        mha.out_proj.weight.copy_(blk.attn.proj.weight)
        mha.out_proj.bias.copy_(blk.attn.proj.bias)
        h = blk.norm1(x)
        y = x + mha(h, h, h, need_weights=False)[0]
        ln2 = F.layer_norm(y, (24,), blk.norm2.weight, blk.norm2.bias, 1e-6)
        y = y + F.linear(0.5 * (z := F.linear(ln2, blk.mlp.fc1.weight, blk.mlp.fc1.bias)) * (1 + torch.erf(z / math.sqrt(2))),
                         blk.mlp.fc2.weight, blk.mlp.fc2.bias)
        assert torch.allclose(blk(x), y, rtol=0, atol=1e-12), 'Block != MultiheadAttention formulation'
    # 2. sin-cos embedding == MAE's numpy construction (get_2d_sincos_pos_embed, cls_token=True).
    for width, grid in ((32, 4), (24, 4), (16, 3)):
        gh = np.arange(grid, dtype=np.float32)
        gw = np.arange(grid, dtype=np.float32)
        g = np.stack(np.meshgrid(gw, gh), axis=0).reshape(2, 1, grid, grid)

        def one(d, pos):
            om = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
            out = np.einsum('m,d->md', pos.reshape(-1), om)
            return np.concatenate([np.sin(out), np.cos(out)], axis=1)

        emb = np.concatenate([one(width // 2, g[0]), one(width // 2, g[1])], axis=1)
        emb = np.concatenate([np.zeros([1, width]), emb], axis=0)
        assert np.abs(sincos_pos_embed(width, grid).numpy() - emb).max() < 1e-12, 'sin-cos layout mismatch'
    # 3. patchify element order (py·p + px)·C + c.
    imgs = torch.randn(2, 3, 8, 8, generator=gen)
    pt = patchify(imgs, 4)
    for (n, r, c, py, px, ch) in ((0, 0, 1, 2, 3, 1), (1, 1, 0, 3, 0, 2), (1, 1, 1, 1, 2, 0)):
        assert pt[n, r * 2 + c, (py * 4 + px) * 3 + ch] == imgs[n, ch, r * 4 + py, c * 4 + px]
    # 4. masking on a hand-made example (grid 4, group 2: groups {0,1,4,5} {2,3,6,7} {8,9,12,13} {10,11,14,15}).
    ik, ir, mk = group_masking(torch.tensor([[0.5, 0.2, 0.9, 0.3], [0.4, 0.4, 0.1, 0.4]]), 4, 2, 0.65)
    assert ik.tolist() == [[2, 3, 6, 7], [8, 9, 12, 13]]
    assert mk[0].tolist() == [1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]
    order = [2, 3, 6, 7, 0, 1, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15]
    assert [order[i] for i in ir[0].tolist()] == list(range(16))
    ik, _, _ = group_masking(torch.tensor([[0.3, 0.1, 0.1, 0.1]]), 4, 2, 0.5)  # tie → lower group index
    assert ik.tolist() == [[2, 3, 6, 7, 8, 9, 12, 13]]


def grad_check(model: CMAE, images, noise, target, probes) -> list:
    """Central finite differences of the float64 loss vs autograd, on a copy of the model."""
    m = copy.deepcopy(model)
    m.zero_grad(set_to_none=True)
    m(images, noise, target)['loss'].backward()
    params = dict(m.named_parameters())
    results = []
    h = 1e-5
    for name, idx in probes:
        p = params[name]
        ag = p.grad[idx].item()
        with torch.no_grad():
            orig = p[idx].item()
            p[idx] = orig + h
            lp = m(images, noise, target)['loss'].item()
            p[idx] = orig - h
            lm = m(images, noise, target)['loss'].item()
            p[idx] = orig
        fd = (lp - lm) / (2 * h)
        err = abs(fd - ag)
        ok = err <= 1e-8 + 1e-6 * abs(ag)
        results.append(dict(param=name, index=list(idx), autograd=ag, finiteDiff=fd, absErr=err, ok=ok))
        assert ok, f'gradient check failed for {name}{list(idx)}: autograd {ag!r} vs finite difference {fd!r}'
    return results


def make_fixture(mode: str, out_dir: str) -> dict:
    # MoCo v3 with FLIP-style masked online views (3 of 4 groups visible) so that the masked path is
    # exercised; its default (src/models/config.ts) is maskRatio 0.
    cfg = {'cmae': Config(), 'mae': Config(mode='mae', maskRatio=0.75, maskGroup=1),
           'mocov3': Config(mode='mocov3', maskRatio=0.25),
           'maskdistill': Config(mode='maskdistill', maskRatio=0.75, maskGroup=1),
           'simclr': Config(mode='simclr', maskRatio=0.25, tau=0.2),
           'densecl': Config(mode='densecl', maskRatio=0.25, tau=0.2, denseWeight=0.5)}[mode]
    views = 2 if mode in ('mocov3', 'simclr', 'densecl') else 1
    torch.manual_seed(0)
    model = CMAE(cfg)
    model.initialize_weights(PERTURB)
    model.train()

    gen = torch.Generator().manual_seed(1)
    n_groups = (cfg.grid // cfg.maskGroup) ** 2
    images, target, noise = make_inputs(cfg, gen, n_groups, views * BATCH)
    tgt_arg = target if mode in ('cmae', 'mocov3', 'simclr', 'densecl') else None

    # Sanity checks of the reference itself.
    ids_keep, ids_restore, mask = group_masking(noise, cfg.grid, cfg.maskGroup, cfg.maskRatio)
    K = ids_keep.shape[1]
    assert torch.equal(ids_keep, ids_keep.sort(dim=1).values)
    assert torch.all(mask.sum(1) == cfg.num_patches - K)
    assert torch.all(torch.gather(mask, 1, ids_keep) == 0)
    if mode == 'mae':
        assert K == int(cfg.num_patches * (1 - cfg.maskRatio))
    probes = [('blocks.0.attn.qkv.weight', (5, 3)), ('blocks.1.attn.qkv.bias', (70,)),
              ('patch_embed.proj.weight', (3, 1, 2, 0)), ('patch_embed.proj.bias', (2,)),
              ('cls_token', (0, 0, 7)), ('blocks.1.norm1.bias', (1,))]
    if mode == 'mocov3':
        probes += [('blocks.1.mlp.fc2.weight', (3, 7)), ('projector.bn.weight', (10,)),
                   ('projector.fc1.weight', (3, 17)), ('predictor.fc2.weight', (3, 20)), ('predictor.bn.bias', (6,))]
    elif mode == 'densecl':
        probes += [('blocks.1.mlp.fc2.weight', (3, 7)), ('projector.fc1.weight', (3, 17)), ('predictor.fc2.weight', (3, 20)),
                   ('dense_projector.fc1.weight', (5, 9)), ('dense_projector.fc1.bias', (11,)),
                   ('dense_projector.fc2.weight', (2, 40)), ('dense_projector.fc2.bias', (7,))]
    elif mode == 'simclr':
        probes += [('blocks.1.mlp.fc2.weight', (3, 7)), ('projector.bn.weight', (10,)), ('projector.bn.bias', (4,)),
                   ('projector.fc1.weight', (3, 17)), ('projector.fc2.weight', (5, 30))]
    else:
        probes += [('mask_token', (0, 0, 3)), ('norm.weight', (4,)), ('decoder_pred.bias', (0,)),
                   ('decoder_blocks.0.mlp.fc1.weight', (9, 2))]
    if mode == 'cmae':
        probes += [('feature_mask_token', (0, 0, 5)), ('feature_decoder_norm.weight', (4,)),
                   ('feature_decoder_pred.weight', (7, 11)), ('projector.bn.weight', (10,)),
                   ('projector.fc1.weight', (3, 17)), ('predictor.fc2.weight', (3, 20)),
                   ('predictor.bn.bias', (6,))]
    gradcheck = grad_check(model, images, noise, tgt_arg, probes)

    st: dict = {}
    for n, t in state_names(model).items():
        st['param.' + n] = ('F32', t.detach().clone())
    st['input.images'] = ('F32', images)
    st['input.mask_noise'] = ('F32', noise)
    if tgt_arg is not None:
        st['input.target_images'] = ('F32', target)
    # encode() of the initial weights on input.images (whole images, no masking): the cls token and
    # the mean of the patch tokens (cls excluded), after the final LayerNorm for the online encoder,
    # without one for the momentum encoder (as it runs in training).
    with torch.no_grad():
        branches = [('online', encoder_forward(model, images))]
        if hasattr(model, 'momentum_encoder'):
            branches.append(('momentum', encoder_forward(model.momentum_encoder, images)))
        for branch, tokens in branches:
            st[f'expect.encode.{branch}.cls'] = ('F64', tokens[:, 0].clone())
            st[f'expect.encode.{branch}.mean'] = ('F64', tokens[:, 1:].mean(dim=1))

    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trainable if decays(n, model)]
    no_decay = [p for n, p in trainable if not decays(n, model)]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': WD}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=LR, betas=BETAS, eps=ADAM_EPS)
    losses = []
    zero_grads: dict = {}  # structurally zero gradients (|g| < 1e-12): name -> element count
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        out = model(images, noise, tgt_arg)
        out['loss'].backward()
        rec = {'step': step, 'total': out['loss'].item()}
        if 'loss_rc' in out:
            rec['rc'] = out['loss_rc'].item()
        if 'loss_ct' in out:
            rec['ct'] = out['loss_ct'].item()
        if 'loss_dense' in out:
            rec['dense'] = out['loss_dense'].item()
        losses.append(rec)
        if step == 1:
            st['expect.ids_keep'] = ('I32', out['ids_keep'])
            st['expect.ids_restore'] = ('I32', out['ids_restore'])
            st['expect.mask'] = ('F32', out['mask'])
            if 'match' in out:
                st['expect.match'] = ('I32', out['match'].to(torch.int32))
            for k in ('latent', 'pred', 'feature_pred', 'z_s', 'q', 'target_feature', 'z_t', 'q_dense'):
                if k in out:
                    st['expect.' + k] = ('F64', out[k].detach().clone())
            for k in ('loss', 'loss_rc', 'loss_ct', 'loss_dense'):
                if k in out:
                    st['expect.' + k] = ('F64', out[k].detach().clone())
            for n, p in trainable:
                # MoCo v3's loss does not pass through the final norm (kept for encode()): no gradient,
                # which cmae reports as zeros and AdamW (no weight decay on norms) leaves unchanged.
                assert p.grad is not None or (mode in ('mocov3', 'simclr', 'densecl') and n.startswith('norm.')), f'no gradient for {n}'
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                st['grad.' + n] = ('F32', grad.detach().clone())
                nz = int((grad.abs() < 1e-12).sum())
                if nz:
                    zero_grads[n] = nz
        opt.step()
        if hasattr(model, 'momentum_encoder'):
            model.momentum_update(EMA_M)
    for n, t in state_names(model).items():
        st['step3.' + n] = ('F32', t.detach().clone())

    config = {k: v for k, v in asdict(cfg).items() if v is not None}  # denseWeight only where the method has it
    train = dict(batch=BATCH, steps=STEPS, optimizer='torch.optim.AdamW', lr=LR, betas=list(BETAS), eps=ADAM_EPS,
                 weightDecay=WD,
                 weightDecayParams='Linear weights and patch_embed.proj.weight only (0 for all biases, LN/BN, '
                                   'cls_token, mask tokens)',
                 emaMomentum=EMA_M if hasattr(model, 'momentum_encoder') else None,
                 order='per step: forward, backward, AdamW step, then EMA (cmae, mocov3); grad.* / expect.* are from '
                       'step 1 (initial weights); losses are those of each step\'s forward')
    meta = {'format': 'cmae-golden-fixture/1', 'mode': mode, 'config': json.dumps(config),
            'torch': torch.__version__, 'generator': 'test/reference/make_fixtures.py'}
    base = os.path.join(out_dir, f'{mode}_micro')
    write_safetensors(base + '.safetensors', st, meta)

    # Round-trip our own writer.
    back, back_meta = read_safetensors(base + '.safetensors')
    assert back_meta == meta and set(back) == set(st)
    for n, (dt, t) in st.items():
        assert back[n][0] == dt and torch.equal(back[n][1], t.detach().to(_ST_DTYPES[dt][0]))

    info = dict(mode=mode, config=config, train=train, constants=dict(lnEps=LN_EPS, normPixEps=NORM_PIX_EPS),
                init=dict(seed=0, perturb=PERTURB, inputSeed=1,
                          note='§1.7 init (torch.manual_seed(0)), then every LN/BN weight+bias and Linear bias '
                               '+= U(-0.1, 0.1); momentum branch copied; all values rounded to float32'),
                losses=losses, gradCheck=gradcheck,
                zeroGradients=dict(count=zero_grads,
                                   note='mathematically zero (k-part of qkv.bias: softmax shift invariance; '
                                        'anything only shifting the input of a train-mode BN: projector/predictor '
                                        'fc1.bias, feature_decoder_norm.bias, feature_decoder_pred.bias, and in '
                                        'mocov3 the last block\'s mlp.fc2.bias; mocov3\'s norm.* is outside its '
                                        'loss). Compare '
                                        'with an absolute tolerance; AdamW turns float32 noise there into updates '
                                        'of up to ~lr per step'),
                tensors={n: dict(dtype=dt, shape=list(t.shape)) for n, (dt, t) in sorted(st.items())},
                torch=torch.__version__, python=platform.python_version(),
                fileBytes=os.path.getsize(base + '.safetensors'))
    with open(base + '.json', 'w') as f:
        json.dump(info, f, indent=1)
        f.write('\n')
    return info


# =================================================================================================
# Classifier fixture (fine-tuning, MAE's recipe): the encoder on every patch, pooled (cls → norm, or
# the mean of the patch tokens → fc_norm: MAE's global_pool), a linear head, soft-target
# cross-entropy (label smoothing, and one mixup blend), AdamW with BEiT's layer-wise lr decay.

CLS_CLASSES, CLS_SMOOTHING, CLS_LAYER_DECAY = 5, 0.1, 0.75
CLS_DROP_SEED, CLS_DROP_RATE = 3, 0.5


class Classifier(nn.Module):
    def __init__(self, cfg: Config, num_classes: int, global_pool: bool):
        super().__init__()
        self.cfg, self.global_pool = cfg, global_pool
        build_encoder(self, cfg, final_norm=not global_pool)
        if global_pool:
            self.fc_norm = nn.LayerNorm(cfg.dim, eps=LN_EPS)
        self.head = nn.Linear(cfg.dim, num_classes)

    @torch.no_grad()
    def initialize_weights(self, perturb: float) -> None:
        """As CMAE.initialize_weights for the encoder; the head xavier (not MAE's N(0, 2e-5²), whose
        gradients into the encoder would be too small to test) and every LN weight/bias and Linear
        bias perturbed."""
        cfg = self.cfg
        self.pos_embed.copy_(sincos_pos_embed(cfg.dim, cfg.grid)[None])
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                mod.bias.uniform_(-perturb, perturb)
            elif isinstance(mod, nn.LayerNorm):
                mod.weight.uniform_(1 - perturb, 1 + perturb)
                mod.bias.uniform_(-perturb, perturb)
        for p in self.parameters():
            p.copy_(p.float().double())

    def forward(self, imgs, drop_scales=None):
        x = encoder_forward(self, imgs, drop_scales=drop_scales)  # (B, 1 + L, D), with norm when cls pooling
        feat = self.fc_norm(x[:, 1:, :].mean(dim=1)) if self.global_pool else x[:, 0]
        return self.head(feat)


MASK32 = 0xFFFFFFFF


def philox4x32(seed: int, stream: int, index: int) -> list:
    """Philox-4x32-10 as native/core/rng.h: counter (index lo, hi, stream lo, hi), key = seed."""
    c = [index & MASK32, (index >> 32) & MASK32, stream & MASK32, (stream >> 32) & MASK32]
    k0, k1 = seed & MASK32, (seed >> 32) & MASK32
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        hi0, lo0, hi1, lo1 = p0 >> 32, p0 & MASK32, p1 >> 32, p1 & MASK32
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
        k0, k1 = (k0 + 0x9E3779B9) & MASK32, (k1 + 0xBB67AE85) & MASK32
    return c


RNG_STREAM_DROP_PATH = 6  # native/core/rng.h RngStream::DropPath


def drop_path_scales(seed: int, step: int, rate: float, depth: int, batch: int) -> torch.Tensor:
    """(depth, 2, B): the native classifier's drop-path factors for (seed, step) (cmae_model.cc
    draw_branch_scales): block i keeps a branch when its uniform draw < 1 − rate·i/(depth − 1)
    (float32), and scales it by 1/keep."""
    stream = (RNG_STREAM_DROP_PATH << 48) | step
    out = torch.zeros(depth, 2, batch, dtype=torch.float64)
    for i in range(depth):
        keep = np.float32(1.0 - (rate * i / (depth - 1) if depth > 1 else 0.0))
        for k in range(2 * batch):
            at = 2 * i * batch + k
            u = np.float32((philox4x32(seed, stream, at)[0] >> 8) * (1.0 / 16777216.0))
            out[i, k // batch, k % batch] = float(np.float32(1.0) / keep) if u < keep else 0.0
    return out


def soft_cross_entropy(logits, targets):
    return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()


def layer_id(name: str, depth: int) -> int:
    """BEiT / MAE util/lr_decay.py get_layer_id_for_vit."""
    if name in ('cls_token', 'pos_embed') or name.startswith('patch_embed'):
        return 0
    if name.startswith('blocks.'):
        return int(name.split('.')[1]) + 1
    return depth + 1


def make_classifier_fixture(global_pool: bool, out_dir: str) -> dict:
    cfg = Config(maskRatio=0.0)
    torch.manual_seed(0)
    model = Classifier(cfg, CLS_CLASSES, global_pool)
    model.initialize_weights(PERTURB)
    gen = torch.Generator().manual_seed(2)
    images, _, _ = make_inputs(cfg, gen, 1)
    labels = torch.tensor([3, 0, 4, 1])
    # Label smoothing as timm's LabelSmoothingCrossEntropy; row 3 mixed with row 0's label (λ = 0.7).
    targets = torch.full((BATCH, CLS_CLASSES), CLS_SMOOTHING / CLS_CLASSES)
    targets[torch.arange(BATCH), labels] += 1 - CLS_SMOOTHING
    targets[3] = 0.7 * targets[3] + 0.3 * targets[0]
    targets = targets.float().double()

    st: dict = {}
    for n, t in state_names(model).items():
        st['param.' + n] = ('F32', t.detach().clone())
    st['input.images'] = ('F32', images)
    st['input.targets'] = ('F32', targets)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    # MAE's param_groups_lrd: lr scale decay^(depth + 1 − layer id); weight decay on Linear/conv weights (ours).
    groups = {}
    for n, p in trainable:
        scale = CLS_LAYER_DECAY ** (cfg.depth + 1 - layer_id(n, cfg.depth))
        wd = WD if (n == 'patch_embed.proj.weight' or (n.endswith('.weight') and isinstance(model.get_submodule(n.rpartition('.')[0]), nn.Linear))) else 0.0
        groups.setdefault((scale, wd), []).append(p)
    opt = torch.optim.AdamW([{'params': ps, 'lr': LR * sc, 'weight_decay': wd} for (sc, wd), ps in groups.items()],
                            lr=LR, betas=BETAS, eps=ADAM_EPS)
    losses = []
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        logits = model(images)
        loss = soft_cross_entropy(logits, targets)
        loss.backward()
        losses.append({'step': step, 'total': loss.item()})
        if step == 1:
            st['expect.logits'] = ('F64', logits.detach().clone())
            for n, p in trainable:
                st['grad.' + n] = ('F32', p.grad.detach().clone())
            # The reference's own gradient against central differences of the float64 loss.
            with torch.no_grad():
                for n, idx in (('head.weight', (2, 5)), ('blocks.0.attn.qkv.weight', (5, 3)), ('cls_token', (0, 0, 7)),
                               ('patch_embed.proj.bias', (2,))):
                    p = dict(model.named_parameters())[n]
                    old = p[idx].item()
                    p[idx] = old + 1e-6
                    up = soft_cross_entropy(model(images), targets).item()
                    p[idx] = old - 1e-6
                    down = soft_cross_entropy(model(images), targets).item()
                    p[idx] = old
                    fd = (up - down) / 2e-6
                    assert abs(fd - p.grad[idx].item()) <= 1e-6 * max(1.0, abs(fd)), (n, fd, p.grad[idx].item())
        opt.step()
    for n, t in state_names(model).items():
        st['step3.' + n] = ('F32', t.detach().clone())
    # Drop path: one forward + backward from the step-3 parameters with the native model's draws
    # for (CLS_DROP_SEED, step s, CLS_DROP_RATE): the first step s ≥ 5 (not the default 0) whose last block both drops and
    # keeps some sample on each branch.
    s = next(s for s in range(5, 1000) if all(0 < int((drop_path_scales(CLS_DROP_SEED, s, CLS_DROP_RATE, cfg.depth, BATCH)[-1, b] > 0).sum()) < BATCH
                                           for b in (0, 1)))
    scales = drop_path_scales(CLS_DROP_SEED, s, CLS_DROP_RATE, cfg.depth, BATCH)
    model.zero_grad(set_to_none=True)
    dp_loss = soft_cross_entropy(model(images, scales), targets)
    dp_loss.backward()
    st['drop_path.scales'] = ('F32', scales)
    st['drop_path.loss'] = ('F64', dp_loss.detach().reshape(1))
    for n, p in trainable:
        st['drop_path.grad.' + n] = ('F32', p.grad.detach().clone())
    name = f'classifier_{"mean" if global_pool else "cls"}_micro'
    config = {**asdict(cfg), 'mode': 'classifier', 'numClasses': CLS_CLASSES, 'globalPool': global_pool}
    meta = {'format': 'cmae-golden-fixture/1', 'mode': 'classifier', 'config': json.dumps(config),
            'torch': torch.__version__, 'generator': 'test/reference/make_fixtures.py'}
    base = os.path.join(out_dir, name)
    write_safetensors(base + '.safetensors', st, meta)
    info = dict(mode='classifier', config=config,
                train=dict(batch=BATCH, steps=STEPS, lr=LR, betas=list(BETAS), eps=ADAM_EPS, weightDecay=WD,
                           layerDecay=CLS_LAYER_DECAY, labelSmoothing=CLS_SMOOTHING,
                           note='targets: smoothed one-hot of input labels, row 3 mixed 0.7/0.3 with row 0; '
                                'grad.* and expect.logits from step 1; AdamW lr per parameter = lr·0.75^(depth+1−layer_id); '
                                'drop_path.*: loss and gradients from the step3.* parameters with drop path (seed, step, rate below)'),
                dropPath=dict(seed=CLS_DROP_SEED, step=s, rate=CLS_DROP_RATE),
                losses=losses, torch=torch.__version__, python=platform.python_version(),
                fileBytes=os.path.getsize(base + '.safetensors'))
    with open(base + '.json', 'w') as f:
        json.dump(info, f, indent=1)
        f.write('\n')
    return info


def verify_fixture(path: str) -> None:
    """Rebuild the model from the file's param.* alone, replay the 3 steps, compare with the file."""
    t, meta = read_safetensors(path)
    cfg = Config.from_json(meta['config'])
    mode = cfg.mode
    model = CMAE(cfg).train()
    names = state_names(model)
    assert {n for n in t if n.startswith('param.')} == {'param.' + n for n in names}, 'param.* set mismatch'
    with torch.no_grad():
        for n, v in names.items():
            v.copy_(t['param.' + n][1].double())
    x = lambda k: t[k][1].double()  # noqa: E731
    tgt = x('input.target_images') if 'input.target_images' in t else None

    def close(a, b, what, tol):
        err = (a.double() - b.double()).abs().max().item()
        assert err <= tol, f'{path}: {what} differs by {err}'

    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{'params': [p for n, p in trainable if decays(n, model)], 'weight_decay': WD},
                             {'params': [p for n, p in trainable if not decays(n, model)], 'weight_decay': 0.0}],
                            lr=LR, betas=BETAS, eps=ADAM_EPS)
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        out = model(x('input.images'), x('input.mask_noise'), tgt)
        out['loss'].backward()
        if step == 1:
            assert torch.equal(out['ids_keep'].int(), t['expect.ids_keep'][1])
            assert torch.equal(out['ids_restore'].int(), t['expect.ids_restore'][1])
            assert torch.equal(out['mask'].float(), t['expect.mask'][1])
            for k in ('latent', 'pred', 'feature_pred', 'z_s', 'q', 'target_feature', 'z_t', 'loss', 'loss_rc', 'loss_ct'):
                if k in out:
                    close(out[k].detach(), t['expect.' + k][1], 'expect.' + k, 1e-12)
            assert {k for k in t if k.startswith('grad.')} == {'grad.' + n for n, _ in trainable}
            for n, p in trainable:
                close((p.grad if p.grad is not None else torch.zeros_like(p)).float(), t['grad.' + n][1], 'grad.' + n, 0.0)
        opt.step()
        if hasattr(model, 'momentum_encoder'):
            model.momentum_update(EMA_M)
    moved = 0
    for n, v in state_names(model).items():
        close(v.float(), t['step3.' + n][1], 'step3.' + n, 0.0)
        moved += int(not torch.equal(t['step3.' + n][1], t['param.' + n][1]))
    assert moved > 0


# =================================================================================================
# --check-checkpoint

def check_checkpoint(ckpt_path: str, images_path: str, prefix: str, out_path: str | None) -> None:
    tensors, meta = read_safetensors(ckpt_path)
    if 'config' not in meta:
        sys.exit(f'{ckpt_path}: metadata has no "config" key')
    cfg = Config.from_json(meta['config'])
    enc = ViTEncoder(cfg, final_norm=True)
    state = {}
    for n, t in enc.state_dict().items():
        key = prefix + n
        if key not in tensors:
            if n == 'pos_embed':
                print(f'note: {key} not in checkpoint, using the fixed sin-cos embedding')
                state[n] = sincos_pos_embed(cfg.dim, cfg.grid)[None].float().double()
                continue
            sys.exit(f'{ckpt_path}: missing tensor {key}')
        v = tensors[key][1].to(torch.float64)
        if tuple(v.shape) != tuple(t.shape):
            sys.exit(f'{ckpt_path}: {key} has shape {list(v.shape)}, expected {list(t.shape)}')
        state[n] = v
    enc.load_state_dict(state)
    imgs_t, _ = read_safetensors(images_path)
    for cand in ('images', 'input.images'):
        if cand in imgs_t:
            imgs = imgs_t[cand][1]
            break
    else:
        four_d = [v for v in imgs_t.values() if v[1].dim() == 4]
        if len(four_d) != 1:
            sys.exit(f'{images_path}: need a tensor "images" (B, C, H, W)')
        imgs = four_d[0][1]
    imgs = imgs.to(torch.float64)
    with torch.no_grad():
        x = enc(imgs, None)
    cls, pooled = x[:, 0, :], x[:, 1:, :].mean(dim=1)
    np.set_printoptions(precision=6, suppress=False, linewidth=120, threshold=1 << 20)
    print(f'config: {json.dumps(asdict(cfg))}')
    print(f'images: {list(imgs.shape)}')
    print('cls features (B, D) [after final norm]:')
    print(cls.numpy())
    print('mean-pooled patch features (B, D) [after final norm, cls excluded]:')
    print(pooled.numpy())
    if out_path:
        write_safetensors(out_path, {'cls': ('F64', cls), 'pooled': ('F64', pooled)})
        print(f'wrote {out_path}')


# =================================================================================================
# Foreign checkpoints: a timm-layout ViT (CMAE.loadEncoder, test/model/foreign.test.ts)

TIMM_CFG = Config(imageSize=16, channels=3, patchSize=4, dim=16, depth=2, heads=2, mlpRatio=2.0)  # mlpRatio 2: inferred, not assumed
TIMM_CLASSES = 5


class TimmViT(nn.Module):
    """timm's VisionTransformer semantics under timm's state-dict names (class_token=True, no
    register tokens, qkv_bias=True, no layer scale): pos_embed [1, 1 + L, D] added after the cls
    token is prepended (the default), or with no_embed_class [1, L, D] added to the patch tokens
    only; global_pool 'token' (final `norm` on every token, then x[:, 0]) or 'avg' (fc_norm: the
    final norm is an identity, the patch tokens are averaged, then `fc_norm`); then `head`."""

    def __init__(self, cfg: Config, no_embed_class: bool, global_pool: str, num_classes: int):
        super().__init__()
        assert global_pool in ('token', 'avg')
        self.no_embed_class, self.global_pool = no_embed_class, global_pool
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + (0 if no_embed_class else 1), cfg.dim))
        self.blocks = nn.ModuleList([Block(cfg.dim, cfg.heads, cfg.mlpRatio, LN_EPS) for _ in range(cfg.depth)])
        if global_pool == 'avg':
            self.fc_norm = nn.LayerNorm(cfg.dim, eps=LN_EPS)
        else:
            self.norm = nn.LayerNorm(cfg.dim, eps=LN_EPS)
        self.head = nn.Linear(cfg.dim, num_classes)

    def forward(self, imgs, pos_embed=None):
        """(pre-logits features (B, D), logits (B, classes)); pos_embed overrides self.pos_embed
        (a resampled table for another grid)."""
        pos = self.pos_embed if pos_embed is None else pos_embed
        x = self.patch_embed(imgs)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x + pos], dim=1) if self.no_embed_class else torch.cat([cls, x], dim=1) + pos
        for blk in self.blocks:
            x = blk(x)
        if self.global_pool == 'avg':
            feats = self.fc_norm(x[:, 1:].mean(dim=1))
        else:
            feats = self.norm(x)[:, 0]
        return feats, self.head(feats)

    def mean_of_normed(self, imgs):
        """timm's global_pool='avg' with fc_norm=False (a `norm` model): norm every token, average
        the patch tokens (cmae's pool 'mean')."""
        x = self.patch_embed(imgs)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 1:].mean(dim=1)


def resample_pos_embed(pos, new_grid: int, prefix: int, antialias: bool):
    """timm's resample_abs_pos_embed (antialias=True, its default and checkpoint_filter_fn's) or the
    official MAE code's interpolate_pos_embed (antialias=False): the prefix rows kept, the grid rows
    resized by F.interpolate(mode='bicubic', align_corners=False). In float64 (timm casts to float32)."""
    old = int(math.isqrt(pos.shape[1] - prefix))
    head, grid = pos[:, :prefix], pos[:, prefix:]
    d = pos.shape[-1]
    grid = grid.reshape(1, old, old, d).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode='bicubic', align_corners=False, antialias=antialias)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, d)
    return torch.cat([head, grid], dim=1)


def make_timm_fixture(out_dir: str) -> dict:
    """Two timm-layout checkpoints (metadata {'format': 'pt'}, as timm's safetensors on the Hugging
    Face hub) and one file of inputs and reference outputs:
      timm_vit_micro_token.safetensors  pos_embed with the cls row, `norm`, global_pool 'token', head
      timm_vit_micro_avg.safetensors    no_embed_class (pos_embed without the cls row), `fc_norm`, 'avg', head
      timm_vit_micro_expect.safetensors images at the checkpoint's 16² and at 20² (grid 5: the
        resized case), features/logits, resampled position tables, and a general bicubic case."""
    cfg = TIMM_CFG
    gen = torch.Generator().manual_seed(7)
    models = {}
    for name, no_embed_class, pool in (('token', False, 'token'), ('avg', True, 'avg')):
        m = TimmViT(cfg, no_embed_class, pool, TIMM_CLASSES)
        with torch.no_grad():
            for n, p in m.named_parameters():
                if n.endswith('norm1.weight') or n.endswith('norm2.weight') or n in ('norm.weight', 'fc_norm.weight'):
                    p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
                elif n in ('pos_embed', 'cls_token'):
                    p.copy_(0.5 * torch.randn(p.shape, generator=gen))  # large enough that a wrong table shows
                else:
                    p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if n.endswith('bias') else 1.0 / math.sqrt(p.shape[-1] if p.dim() == 2 else p[0].numel())))
                p.copy_(p.float().double())
        models[name] = m.eval()
    B = 2
    imgs16 = (torch.randn(B, 3, 16, 16, generator=gen)).float().double()
    imgs20 = (torch.randn(B, 3, 20, 20, generator=gen)).float().double()
    st: dict = {'input.images16': ('F32', imgs16), 'input.images20': ('F32', imgs20)}
    with torch.no_grad():
        for name, m in models.items():
            feats, logits = m(imgs16)
            st[f'expect.{name}.features'] = ('F64', feats)
            st[f'expect.{name}.logits'] = ('F64', logits)
            prefix = 0 if m.no_embed_class else 1
            for aa in (True, False):
                tag = 'aa' if aa else 'noaa'
                pos5 = resample_pos_embed(m.pos_embed, 5, prefix, aa)
                st[f'expect.{name}.resized5_{tag}.features'] = ('F64', m(imgs20, pos5)[0])
                if name == 'token':
                    st[f'expect.token.pos5_{tag}'] = ('F64', pos5)
                    st[f'expect.token.pos3_{tag}'] = ('F64', resample_pos_embed(m.pos_embed, 3, prefix, aa))
        st['expect.token.mean'] = ('F64', models['token'].mean_of_normed(imgs16))
        # A general bicubic case, channel-last as a position table is: (5, 7, 3) → (9, 4) and (2, 3).
        src = torch.randn(1, 3, 5, 7, generator=gen).float().double()
        st['input.bicubic'] = ('F32', src.permute(0, 2, 3, 1)[0])
        for (h, w) in ((9, 4), (2, 3)):
            for aa in (True, False):
                out = F.interpolate(src, size=(h, w), mode='bicubic', align_corners=False, antialias=aa)
                st[f'expect.bicubic_{h}x{w}_{"aa" if aa else "noaa"}'] = ('F64', out.permute(0, 2, 3, 1)[0])
    files = {}
    for name, m in models.items():
        path = os.path.join(out_dir, f'timm_vit_micro_{name}.safetensors')
        write_safetensors(path, {n: ('F32', t.detach()) for n, t in m.state_dict().items()}, {'format': 'pt'})
        files[name] = os.path.getsize(path)
    meta = {'format': 'cmae-golden-fixture/1', 'generator': 'test/reference/make_fixtures.py', 'torch': torch.__version__}
    path = os.path.join(out_dir, 'timm_vit_micro_expect.safetensors')
    write_safetensors(path, st, meta)
    files['expect'] = os.path.getsize(path)
    info = dict(
        encoder=dict(imageSize=cfg.imageSize, channels=cfg.channels, patchSize=cfg.patchSize, dim=cfg.dim,
                     depth=cfg.depth, heads=cfg.heads, mlpRatio=cfg.mlpRatio, numClasses=TIMM_CLASSES, lnEps=LN_EPS),
        checkpoints={'token': 'timm_vit_micro_token.safetensors: class_token, pos_embed [1, 17, 16] (cls row), '
                              'norm.*, head.* (timm global_pool="token")',
                     'avg': 'timm_vit_micro_avg.safetensors: class_token, pos_embed [1, 16, 16] (no_embed_class), '
                            'fc_norm.*, head.* (timm global_pool="avg")'},
        expect={'expect.<ckpt>.features / .logits': 'pre-logits features and head output on input.images16',
                'expect.token.mean': 'the token checkpoint, mean of the normed patch tokens (cmae pool "mean")',
                'expect.<ckpt>.resized5_<aa|noaa>.features': 'on input.images20, pos_embed resampled 4² → 5² '
                    '(aa: timm resample_abs_pos_embed, antialias=True; noaa: MAE interpolate_pos_embed)',
                'expect.token.pos<5|3>_<aa|noaa>': 'the token checkpoint pos_embed resampled to 5² and 3² (cls row kept)',
                'expect.bicubic_<h>x<w>_<aa|noaa>': 'input.bicubic (5, 7, 3) channel-last, resampled by F.interpolate bicubic'},
        tensors={n: dict(dtype=dt, shape=list(t.shape)) for n, (dt, t) in sorted(st.items())},
        fileBytes=files, torch=torch.__version__)
    with open(os.path.join(out_dir, 'timm_vit_micro.json'), 'w') as f:
        json.dump(info, f, indent=1)
        f.write('\n')
    return info


FIXTURES = ('cmae', 'mae', 'mocov3', 'maskdistill', 'simclr', 'densecl', 'timm', 'classifier')


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out-dir', default=os.path.normpath(os.path.join(here, '..', 'fixtures')))
    ap.add_argument('--check-checkpoint', metavar='FILE.safetensors')
    ap.add_argument('--images', metavar='FILE.safetensors', help='tensor "images" (B, C, H, W)')
    ap.add_argument('--prefix', default='', help='name prefix of the encoder tensors in the checkpoint (e.g. "param.")')
    ap.add_argument('--out', help='also write cls/pooled to this safetensors file (F64)')
    ap.add_argument('--only', choices=FIXTURES, action='append',
                    help='write only these fixtures (repeatable; default all)')
    args = ap.parse_args()
    if args.check_checkpoint:
        if not args.images:
            ap.error('--check-checkpoint needs --images')
        check_checkpoint(args.check_checkpoint, args.images, args.prefix, args.out)
        return
    os.makedirs(args.out_dir, exist_ok=True)
    only = set(args.only or FIXTURES)
    if 'classifier' in only:
        for global_pool in (False, True):
            info = make_classifier_fixture(global_pool, args.out_dir)
            print(f'classifier (globalPool={global_pool}): losses ' + ', '.join(f"{r['total']:.12g}" for r in info['losses']))
    if not only - {'classifier'}:
        return
    self_test()
    if 'timm' in only:
        info = make_timm_fixture(args.out_dir)
        print(f'timm: {info["fileBytes"]} bytes')
    for mode in ('cmae', 'mae', 'mocov3', 'maskdistill', 'simclr', 'densecl'):
        if mode not in only:
            continue
        info = make_fixture(mode, args.out_dir)
        verify_fixture(os.path.join(args.out_dir, f'{mode}_micro.safetensors'))
        print(f'{mode}: {info["fileBytes"]} bytes, {len(info["tensors"])} tensors')
        for rec in info['losses']:
            print('  step {step}: '.format(**rec) + ', '.join(f'{k}={v:.12g}' for k, v in rec.items() if k != 'step'))
        worst = max(g['absErr'] / max(abs(g['autograd']), 1e-12) for g in info['gradCheck'])
        print(f'  gradient check: {len(info["gradCheck"])} probes OK (worst relative error {worst:.2e})')


if __name__ == '__main__':
    main()
