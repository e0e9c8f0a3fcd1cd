#include "pos_embed.h"

#include <cmath>
#include <vector>

namespace cmae::model {

void sincos_pos_embed_2d(float* out, int64_t grid_h, int64_t grid_w, int64_t D) {
  const int64_t Q = D / 4;
  // MAE: omega = 1 / 10000 ** (arange(Q) / Q), in float64.
  std::vector<double> omega(static_cast<size_t>(Q));
  for (int64_t d = 0; d < Q; ++d) omega[d] = 1.0 / std::pow(10000.0, static_cast<double>(d) / static_cast<double>(Q));
  for (int64_t k = 0; k < grid_h * grid_w; ++k) {
    const double row = static_cast<double>(k / grid_w), col = static_cast<double>(k % grid_w);
    float* o = out + k * D;
    for (int64_t d = 0; d < Q; ++d) {
      o[d] = static_cast<float>(std::sin(col * omega[d]));
      o[Q + d] = static_cast<float>(std::cos(col * omega[d]));
      o[2 * Q + d] = static_cast<float>(std::sin(row * omega[d]));
      o[3 * Q + d] = static_cast<float>(std::cos(row * omega[d]));
    }
  }
}

}  // namespace cmae::model
