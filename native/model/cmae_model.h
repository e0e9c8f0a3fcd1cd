// The CMAE model (spec §2) with explicit forward and backward, its MAE special case (§1), and MoCo v3
// on the same parts (Mode::MOCOV3, below).
//
//   online:   images → group masking → patchify + patch embed of the visible patches only → +pos
//             → encoder (+final LN) → latent
//             latent → pixel decoder → norm-pix MSE on masked patches            (L_rc)
//             latent → feature decoder → mean → projector → predictor → q
//   momentum: target images (whole, pixel-shifted) → EMA encoder (no final LN) → mean of patch
//             tokens → EMA projector → z_t
//   L = rc_weight·L_rc + ct_weight·2τ·InfoNCE(q, z_t)                            (L_ct)
//
// MoCo v3 (Chen, Xie, He 2021): images and target_images are two augmented views x1, x2; the online
// encoder sees both (its visible patches: mask_ratio > 0 gives FLIP-style masked views) as 2B
// samples, each pooled (mean of patch tokens, no final norm) → projector → predictor → q1, q2; the
// momentum encoder sees both whole → k1, k2; L = ct_weight·2τ·(InfoNCE(q1, k2) + InfoNCE(q2, k1)),
// negatives within each view's B samples, heads' BatchNorm per view. Where we differ from the
// paper: the mean of patch tokens instead of the cls token after the final norm (the momentum
// branch then mirrors the online one layer for layer, as CMAE's does), and a 2-layer projector
// (Linear-BN-ReLU-Linear, CMAE's heads) where MoCo v3 uses 3 layers.
//
// SimCLR (Mode::SIMCLR): both views through the online encoder (as MoCo v3, 2B samples, FLIP-style
// masked views when mask_ratio > 0), mean of patch tokens → projector (BatchNorm over all 2B rows,
// SimCLR's global BN) → z; L = ct_weight·NT-Xent(z) over the 2B samples (scale 1). Differences from
// the paper: a ViT with mean-pooled tokens for its ResNet, CMAE's Linear-BN-ReLU-Linear projector.
//
// DenseCL (Mode::DENSECL): MoCo v3 (above) plus a dense head, as DenseCL (Wang et al. 2021) adds
// to MoCo v2. Each online patch token (the encoder's visible tokens, no final norm) is projected
// by a dense projector (Linear-ReLU-Linear, DenseCL's 1×1 convolutions) into q_d; the momentum
// encoder's tokens of the other view by its EMA twin into k_d. Correspondence: each online token
// is matched to the momentum token of the other view most similar to it by cosine over the
// backbone features (match_tokens), and dense InfoNCE pulls q_d towards the matched k_d against
// the other images' pooled k_d (dense_infonce_forward_backward). L = ct_weight·2τ·((1 − λ)·Σ_views
// InfoNCE_global + λ·Σ_views InfoNCE_dense), λ = dense_weight (DenseCL's 0.5). Where we differ from
// the paper: ViT tokens for its ResNet's feature map; the negatives are the batch's other images
// (DenseCL's queue holds pooled dense keys of past batches); the loss is symmetric over the two
// views (DenseCL's is one-directional) and scaled by 2τ like the global one; the global branch is
// our MoCo v3's (predictor, mean-pooled tokens).
//
// MaskDistill (Mode::MASKDISTILL): MAE's online path, whose decoder predicts D features per patch;
// the teacher is the momentum encoder on the whole (same) image, its patch tokens standardised per
// token (norm-pix) as targets at the masked positions: L = rc_weight·MSE. The teacher follows the
// online encoder by EMA, or stays as loaded (a cmae checkpoint's encoder) when the caller never
// updates the momentum. Differences from the paper: the loss part in loss_and_grad.
//
// Classifier (Mode::CLASSIFIER): the fine-tuned model of MAE's recipe. The encoder sees every patch
// (no masking, as in MAE's fine-tuning); its output is pooled, normalised and classified:
// global_pool (MAE's default): mean of the patch tokens → fc_norm → head; otherwise the cls token →
// norm → head (timm's ViT). Softmax cross-entropy against soft targets (labels smoothed or mixed by
// the caller). Parameters: the encoder's (timm names, loadable from a pre-training checkpoint's
// online encoder), `norm` or `fc_norm`, `head` (N(0, 2e-5²) weight, zero bias, as MAE initialises
// it). Where we differ from MAE's fine-tuning: the position embeddings stay the fixed sin-cos ones
// (MAE makes them a trainable copy). Drop path as timm's (classifier_loss_and_grad).
//
// The model runs on one backend (backend/backend.h) and calls nothing else: its parameters live in
// one arena (parameters.h) and its activations in a workspace planned per batch size, both in
// that backend's memory. It owns the rules about its inputs (shapes, dtypes, devices, what each
// mode needs) and checks them before any work.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config.h"
#include "core/collective.h"
#include "parameters.h"
#include "vit.h"

namespace cmae::model {

struct LossResult {
  // contrastive: DenseCL's (1 − λ)·global + λ·dense, whose dense part is also `dense`.
  double total = 0, reconstruction = 0, contrastive = 0, dense = 0;
};

// Cls: the cls token after the final norm; Mean: the mean of the normalised patch tokens (MAE's
// and cmae's evaluation); Avg: the mean of the last block's patch tokens, then the final norm
// (timm's global_pool='avg' with fc_norm, the official MAE code's global_pool: its final norm is an
// fc_norm applied after pooling). Avg needs the final norm, so the online branch.
enum class Pool : int { Cls = 0, Mean = 1, Avg = 2 };
enum class Branch : int { Online = 0, Momentum = 1 };
Pool parse_pool(const std::string& name);      // 'cls' | 'mean' | 'avg'; throws ErrorKind::Value
Branch parse_branch(const std::string& name);  // 'online' | 'momentum'; throws ErrorKind::Value

class CmaeModel {
 public:
  CmaeModel(const ModelConfig& config, uint64_t seed, Backend& backend);

  // The parameter table a model of `config` would have (names, shapes, offsets, roles), with
  // nothing allocated: what a checkpoint's tensors are checked against before any model is built
  // (a 500-byte file must not make the loader allocate gigabytes). Validates config.
  static ParameterTable plan_parameters(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }
  const ParameterTable& table() const { return table_; }
  // The arenas, in the backend's memory: every parameter and buffer; the gradients of the
  // trainable prefix (which of them take weight decay is the table's ParamInfo::weight_decay).
  const Tensor& params() const { return params_; }
  const Tensor& grads() const { return grads_; }
  // Bytes of backend memory the model holds now: its arenas (parameters, the gradient arenas, the
  // BatchNorm running-stats backup), the workspace and the identity ids of the plans made so far,
  // for the JS engine's external-memory accounting.
  int64_t memory_bytes() const {
    const auto bytes = [](const Tensor& t) { return t.defined() ? t.bytes() : size_t{0}; };
    return static_cast<int64_t>(params_.bytes() + grads_.bytes() + part_grads_.bytes() + bytes(running_stats_backup_) +
                                bytes(workspace_) + bytes(train_ids_) + bytes(infer_ids_));
  }
  uint64_t seed() const { return seed_; }

  // Data-parallel training (issue 16): with a collective of W ranks, loss_and_grad's batch is the
  // global batch (every rank passes the same images) cut into parts_ = W·⌈backend parts / W⌉ fixed
  // parts, of which this rank runs its own ⌈backend parts / W⌉; the per-sample features the
  // whole-batch stage reads (pooled online and momentum features, the pixel loss of each chunk;
  // DenseCL's dense queries, keys and token matches) are all-gathered, that stage (heads with the
  // global batch's BatchNorm statistics, InfoNCE over all the global batch's negatives) runs on
  // every rank alike, and the part gradient arenas are summed across ranks in part order. So 2
  // ranks give the bits of one process on the CPU (2 parts), and every rank holds the same
  // parameters after each update. A rank plans its own samples' activations only and a gradient
  // arena per part it runs (device memory, on a GPU). Null: one process. Pre-training modes only. A device model (CUDA)
  // exchanges device memory where the engine can (NCCL), else through host copies, after the
  // backward; a CPU model sums its gradients in buckets during the backward.
  void set_collective(std::shared_ptr<Collective> collective);

  // Activation recomputation (checkpointing) for the online encoder's training step: it keeps only
  // each block's output and runs each block's forward again in the backward
  // (TransformerStack::layout's recompute): the same gradients, bit for bit, for one more forward of
  // the encoder per step (3-5 % of a tiny step, 12 % of a nano one) and most of its saved
  // activations freed (tiny, batch 64: ~100 MB).
  void set_recompute_activations(bool on);
  bool recompute_activations() const { return recompute_activations_; }
  const std::shared_ptr<Collective>& collective() const { return collective_; }
  // Number of masks drawn from the seeded RNG so far (saved in checkpoints so a resumed run
  // draws exactly the masks the uninterrupted run would have drawn).
  uint64_t mask_counter() const { return mask_counter_; }
  void set_mask_counter(uint64_t counter) { mask_counter_ = counter; }

  // Optional outputs of loss_and_grad for tests and pictures, each null or a tensor on the model's
  // device: pred (B, L, P), mask (N, L), ids_restore (N, L) int32, q and z_t (N, projector_dim), where
  // N = config.views()·B (MoCo v3, SimCLR: view 0's rows, then view 1's; z_t row i is the positive of q
  // row i). q is the predictor's output, SimCLR's the projector's (it has no z_t).
  struct Outputs {
    const Tensor* pred = nullptr;
    const Tensor* mask = nullptr;
    const Tensor* ids_restore = nullptr;
    const Tensor* q = nullptr;
    const Tensor* z_t = nullptr;
  };
  // Forward + backward on one batch. A step whose loss is not finite leaves the model as it found
  // it (the BatchNorm running statistics are restored; the gradients are not meaningful). images: (B, C, H, W) float32; target_images: the same shape,
  // required in CMAE mode (the pixel-shifted view) and MoCo v3 (the second view), ignored in MAE mode
  // (may be null); mask_noise (N, num_groups) or null to draw from the RNG. Gradients are overwritten (zero-grad
  // included).
  LossResult loss_and_grad(const Tensor& images, const Tensor* target_images, const Tensor* mask_noise, const Outputs& outputs);

  // Classifier mode: forward + backward of softmax cross-entropy on one batch; returns the loss.
  // images (B, C, H, W); targets (B, num_classes) float32 distributions (finite); logits (B,
  // num_classes) or null receives the forward's logits. Gradients are overwritten.
  // drop_path_rate in [0, 1): stochastic depth as timm's ViT has it (block i drops each residual
  // branch of each sample with probability rate·i/(depth − 1), scaling kept ones by 1/keep); the
  // draws are a pure function of (seed, step, block, branch, sample), so a resumed run redraws them.
  double classifier_loss_and_grad(const Tensor& images, const Tensor& targets, const Tensor* logits, double drop_path_rate = 0.0,
                                  uint64_t step = 0);
  // Classifier mode: the logits (B, num_classes) of images into out.
  void predict(const Tensor& out, const Tensor& images);

  // Features of unmasked images into out (B, blocks·dim). Online = with the final LayerNorm (what
  // downstream uses); momentum = the EMA encoder as it runs in training (no final norm; CMAE only;
  // pool Cls or Mean). blocks > 1: the last `blocks` blocks' outputs, each pooled (and, online,
  // normed by the final norm) as the last one is, concatenated from the earliest (DINO's linear
  // evaluation of ViTs takes several blocks' features).
  void encode(const Tensor& out, const Tensor& images, Pool pool, Branch branch, int64_t blocks = 1);
  // The last encoder block's attention from the cls query to each patch key, per head, for
  // unmasked images into out (B, heads, L) (cls_attention of ops/attention.h): the map AMT masks by
  // (attention-driven masking), and what DINO-style attention pictures show. Online or momentum
  // branch (CMAE, MoCo v3, MaskDistill); needs depth ≥ 1.
  void cls_attention(const Tensor& out, const Tensor& images, Branch branch);

  // θ_momentum ← m·θ_momentum + (1−m)·θ_online over the encoder (minus its final norm) and
  // projector; momentum in [0, 1]. A no-op in MAE mode.
  void update_momentum(double momentum);
  // Re-copies the online weights into the momentum branch (used after loading online-only weights).
  void reset_momentum();

 private:
  struct Head {  // Linear → BatchNorm1d → ReLU → Linear(no bias)   (spec §2.6)
    LinearRef fc1;
    NormRef bn;
    LinearRef fc2;
    int64_t running_mean = -1, running_var = -1;
  };
  struct HeadActs {
    float *h, *bn, *bn_mean, *bn_rstd, *relu, *out;
  };
  struct DenseHead {  // DenseCL's dense projector per token: Linear → ReLU → Linear (both with bias)
    LinearRef fc1, fc2;
  };
  struct Decoder {  // MAE decoder class (spec §1.5), used for pixels and for features
    LinearRef embed;
    NormRef norm;
    LinearRef pred;
    int64_t mask_token = -1, pos_embed = -1;
    int64_t dim = 0;
    TransformerStack stack;
  };
  struct DecoderActs {
    float *embed, *x0, *ln, *ln_mean, *ln_rstd, *ln_body, *pred;
    float *d_ln_body, *d_ln, *d_x0, *d_embed;
  };
  struct Encoder {
    int64_t cls_token = -1;
    LinearRef patch;  // the conv as a Linear over (c, py, px) patch vectors
    TransformerStack stack;
  };

  struct PlanOnly {};
  CmaeModel(const ModelConfig& config, Backend& backend, PlanOnly);  // validate + register only
  void register_parameters();
  Head add_head(const std::string& prefix, int64_t in, ParamRole role);
  DenseHead add_dense_head(const std::string& prefix, ParamRole role);
  Decoder add_decoder(const std::string& prefix, const std::string& token_name, int64_t dim, int64_t depth, int64_t heads,
                      int64_t out_dim);
  void initialise();
  void plan_training(int64_t B);
  void plan_inference(int64_t B);
  // The workspace, at least `floats` long: the one there, or (when smaller) a new one, the old one
  // freed first; the other plan's batch marker is then reset, its pointers being into the old one.
  float* workspace_for(int64_t floats, int64_t& other_batch);
  // The images tensor of a call: float32 (B, C, S, S) on the model's device, every value finite;
  // returns B.
  int64_t check_images(const Tensor& images, const char* name);
  // Throws ValueError naming `name`, the first non-finite element's index (in the tensor's shape)
  // and its value: one scan (Backend::first_nonfinite) and one 4-byte read.
  void expect_finite(const Tensor& t, const char* name);

  float* p() const { return params_.f32(); }
  // The gradient arena of batch part `part` (of parts_; one of this rank's, or 0): part 0 writes grads_.
  float* part_grads(int part) const;
  // (Re)allocates the part arenas for parts_ and drops the training plan.
  void set_parts(int parts, int part_begin, int part_end);

  // The encoder input x0 (B, 1 + K, D) of samples [b0, b0 + nb): the cls row, then the K patches
  // ids (B, K) of the images (`images`: the image of sample b0), patchified into patches (B, K, P) (channels-first), embedded into
  // tokens (B, K, D), + their position embeddings. Online: ids_keep (only the visible patches are
  // read); momentum branch and encode: the identity ids, K = L. Every pointer is the whole batch's.
  void embed_tokens(float* x0, float* tokens, float* patches, const float* images, const int32_t* ids, int64_t K,
                    const Encoder& enc, int64_t b0, int64_t nb);
  // Samples [b0, b0 + nb) of the batch: latent, ids_restore, d_latent and d_out are the whole
  // batch's; the decoder's own activations `a` hold them from sample w0 on (a decoder laid out for
  // chunks: w0 = the part's slot; otherwise w0 = b0). Gradients into g.
  void decoder_forward(Decoder& dec, DecoderActs& a, const float* latent, const int32_t* ids_restore, int64_t b0, int64_t nb,
                       int64_t w0);
  void decoder_backward(Decoder& dec, DecoderActs& a, float* g, float* d_latent, const float* d_out, const float* latent,
                        const int32_t* ids_restore, int64_t b0, int64_t nb, int64_t w0);
  // The forward of every branch for samples [b0, b0 + nb) of batch part `part`, and the pixel
  // decoder's whole pass (forward, loss, backward into g), chunk by chunk: it needs nothing from
  // other samples. (MoCo v3's N = 2B online samples: view 0, then view 1.)
  void forward_samples(const float* images, const float* target_images, int64_t B, int64_t b0, int64_t nb, int part, float* g);
  // The chunks of part samples [b0, b0 + nb): fn(j, s0, n) for chunk j, samples
  // [s0, s0 + n), near-equal pieces of at most chunk_ samples, in order.
  void for_each_chunk(int64_t b0, int64_t nb, const std::function<void(int64_t, int64_t, int64_t)>& fn) const;
  // The mean-over-masked-patches reconstruction loss of the batch from the chunks' own means:
  // every sample has the same number of masked patches, so chunk j weighs n_j / N.
  double reconstruction_loss(int64_t N) const;
  // Calls fn(view, s0, n) for each piece [s0, s0 + n) of samples [b0, b0 + nb) that lies in one
  // view (view v holds online samples [v·B, (v+1)·B)).
  void for_each_view(int64_t B, int64_t b0, int64_t nb, const std::function<void(int64_t, int64_t, int64_t)>& fn) const;
  // The rows (and BatchNorm statistics) of view `view` in a head's activations.
  HeadActs head_view(const HeadActs& a, int64_t view, int64_t B) const;
  // The backward of samples [b0, b0 + nb) after the losses and heads, into the gradient arena g.
  void backward_samples(float* g, float* d_patch_weight_t, int64_t b0, int64_t nb, int part);
  // The online encoder's backward for samples [b0, b0 + nb) from d_enc, the gradient at its output
  // (N, 1 + K, D, updated in place): the stack, the cls token and the patch embedding.
  void encoder_backward(float* g, float* d_enc, float* d_patch_weight_t, int64_t b0, int64_t nb);
  // Classifier mode: the pooled feature (B, D) of samples [b0, b0 + nb) from the encoder output
  // enc_out (B, 1 + L, D), and the backward of that pooling into d_enc.
  void classifier_pool(float* pooled, const float* enc_out, int64_t b0, int64_t nb);
  void classifier_pool_backward(float* d_enc, const float* d_pooled, int64_t b0, int64_t nb);
  // Drop path's factors (depth, 2, B) for `step` into scales (backend memory): see
  // classifier_loss_and_grad and TransformerStack::set_branch_scales.
  void draw_branch_scales(float* scales, double rate, uint64_t step, int64_t B);
  void head_forward(const Head& head, HeadActs& a, const float* inp, int64_t B, bool update_running_stats);
  void head_backward(const Head& head, HeadActs& a, float* d_inp, const float* d_out, const float* inp, float* d_hidden, int64_t B);

  ModelConfig config_;
  uint64_t seed_;
  Backend& backend_;
  uint64_t mask_counter_ = 0;
  ParameterTable table_;
  Tensor params_, grads_;
  // The BatchNorm running statistics, [running_stats_begin_, table_.total()) of the arena, and their
  // copy from the start of the current step (undefined when the method has no BatchNorm).
  int64_t running_stats_begin_ = 0;
  Tensor running_stats_backup_;
  Tensor finite_check_;  // (1) int32: first_nonfinite's answer
  // Gradient arenas of batch parts 1.. (parts_ − 1 of them, back to back), zeroed with grads_ at
  // the start of a step and added into it at the end.
  Tensor part_grads_;
  // The training step's batch parts (backend.batch_parts() in one process; set_collective) and
  // this rank's [part_begin_, part_end_) of them.
  bool recompute_activations_ = false;
  int parts_ = 1, part_begin_ = 0, part_end_ = 1;
  std::shared_ptr<Collective> collective_;
  // During a distributed step's backward (one part per rank): told the arena offset from which the
  // gradients are complete, so their all-reduce starts (OverlappedSum). Empty otherwise.
  std::function<void(int64_t)> grads_complete_;

  Encoder encoder_, momentum_encoder_;
  NormRef final_norm_;  // the classifier's fc_norm when global_pool
  LinearRef head_;      // classifier only
  int64_t pos_embed_ = -1;
  Decoder pixel_decoder_, feature_decoder_;
  Head projector_, predictor_, momentum_projector_;
  DenseHead dense_projector_, momentum_dense_projector_;

  // One workspace for training and inference (native/README.md, principle 2). A model runs one
  // call at a time, so the two plans never run together: they share one buffer, sized for the
  // larger (an evaluation at batch 256 before training planned 0.36 GB for a tiny model, kept
  // beside the 0.20 GB of its training at batch 64). Nothing in it outlives a call; what must (the
  // identity ids) has its own small tensor per plan.
  Tensor workspace_;
  Tensor train_ids_, infer_ids_;  // (rows, L) int32: ids_all[r, l] = l, for each plan's rows (training: views·B)

  // Training plan (for train_batch_; 0 = none).
  int64_t train_batch_ = 0;
  // The full-sequence passes (pixel and feature decoders, momentum branch) run in chunks of at most
  // chunk_ samples per part (Backend::chunk_rows), at most chunks_ of them per part; their
  // activations hold one chunk per part.
  int64_t chunk_ = 0, chunks_ = 0;
  const Tensor* pred_out_ = nullptr;  // loss_and_grad's outputs.pred, filled chunk by chunk
  struct TrainActs {
    // patches_visible (B, K, P): the visible patches, the patch embedding's input in the forward
    // and its weight gradient's in the backward; tokens (B, K, D): their embeddings.
    float *patches_visible, *tokens, *noise, *mask, *x0, *latent, *latent_mean, *latent_rstd;
    // The reconstruction's mask: `mask` itself, or with AMT's throwing (thrown_groups() > 0) the
    // masked patches less the thrown ones (0 there), from a second random_masking of the same noise
    // that keeps visible ∪ thrown (its ids are scratch).
    float* loss_mask;
    int32_t *unthrown_ids_keep, *unthrown_ids_restore;
    int32_t *ids_keep, *ids_restore;
    int32_t* ids_all;  // (B, L) the identity ids of the momentum branch (CMAE only)
    float *target_pix, *dpred;
    float *d_latent, *d_latent_feature, *d_visible;
    float* d_patch_weight_t;  // one (P, D) block per batch part
    float *feature_pooled, *d_feature_pooled, *d_feature_body;
    float *t_patches, *t_tokens, *t_x0, *t_pooled, *dq, *d_z, *d_head_hidden;
    float* losses;  // (1 + views): reconstruction (unused: see chunk_losses), contrastive of each view (classifier: the cross-entropy)
    float* chunk_losses;  // (parts · chunks_): each pixel-decoder chunk's mean loss, part by part
    // classifier: pooled encoder output, its norm (and statistics), the logits; their gradients (B, ·)
    float *pooled, *feat, *feat_mean, *feat_rstd, *logits, *d_logits, *d_feat, *d_pooled;
    float* drop_scales;  // classifier: drop path's factors (depth, 2, B)
    DecoderActs pixel, feature;
    HeadActs projector, predictor, momentum_projector;
    // DenseCL: the online visible tokens (N, K, D) and their dense projections (hidden, after the
    // ReLU in place; out q_d and its gradient); the momentum tokens (N, L, D) kept for matching,
    // its chunk's hidden rows and the dense keys k_d (N, L, E); the match (N, K); the gradients
    // back to the tokens, last laid out as the encoder output (N, 1 + K, D) with zero cls rows.
    float *dense_in, *dense_h, *dense_q, *dense_dq, *d_dense_h, *d_dense_in, *d_dense_enc;
    float *m_tokens, *m_dense_h, *dense_k, *dense_losses;
    int32_t* match;
  } t_{};
  TransformerStack train_momentum_stack_;
  // Inference plan (for infer_batch_; 0 = none).
  int64_t infer_batch_ = 0;
  TransformerStack infer_stack_online_, infer_stack_momentum_;
  struct InferActs {
    float *patches, *tokens, *x0, *ln, *ln_mean, *ln_rstd;
    float *pooled, *feat, *feat_mean, *feat_rstd;  // classifier (B, D), (B)
    int32_t* ids_all;
  } i_{};
};

}  // namespace cmae::model
