/* rlhf_torch: the C ABI of Rlhf's libtorch shim. Every export is declared here (the build fails on an
 * export without a declaration: -Werror=missing-declarations), so the ABI reads without the C# side.
 *
 * Conventions (TorchSharp's THS*.h are the model):
 *  - every export is extern "C", named area_op (rt_tensor_add); in-place ops end in '_';
 *  - tensors cross as opaque handles (rt_tensor = at::Tensor*), freed with rt_tensor_free;
 *  - a function returning a handle returns NULL only on error; one returning int returns 0 on
 *    success and -1 on error (or a count >= 0); an *undefined* tensor (e.g. a missing grad) is
 *    reported through an out-parameter set to NULL with status 0, never as an error;
 *  - after an error, rt_take_error() returns the message (caller frees it with rt_free_string)
 *    and clears it; every export catches c10::Error, std::exception and anything else;
 *  - arrays cross as pointer + length; lists of known length are written into caller buffers,
 *    lists of unknown length come back as malloc'd arrays freed with rt_free_buffer;
 *  - dtype codes are at::ScalarType values; device type 0 is CPU, 1 CUDA (with a device index);
 *    reduce ops are 0 sum, 1 max, 2 min, 3 product.
 */
#ifndef RLHF_TORCH_H
#define RLHF_TORCH_H
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
#define RT_API extern "C" __attribute__((visibility("default")))
namespace at { class Tensor; class Generator; }
namespace rt { struct Store; struct Group; struct Work; }
typedef at::Tensor* rt_tensor;       /* a tensor handle */
typedef at::Generator* rt_generator; /* a random generator (CPU or CUDA) */
typedef rt::Store* rt_store;         /* a c10d store (TCPStore or PrefixStore) */
typedef rt::Group* rt_pg;            /* a process group (Gloo or NCCL) */
typedef rt::Work* rt_work;           /* an in-flight collective */
#else
#define RT_API extern __attribute__((visibility("default")))
typedef struct rt_tensor_s* rt_tensor;
typedef struct rt_generator_s* rt_generator;
typedef struct rt_store_s* rt_store;
typedef struct rt_pg_s* rt_pg;
typedef struct rt_work_s* rt_work;
#endif

/* ---- Errors, handle lifetime, memory accounting, queries, raw data, threads, build info, generators (core.cpp) ---- */

RT_API char* rt_take_error(void);
RT_API void rt_free_string(char* s);
RT_API void rt_free_buffer(void* p);
// Raises a C++ exception on purpose: tests use it to prove that `...` is caught too.
RT_API int rt_debug_throw(int kind);
RT_API void rt_tensor_free(rt_tensor t);
RT_API int64_t rt_live_handles(void);
RT_API int64_t rt_cpu_live_bytes(void);
RT_API int64_t rt_cpu_peak_bytes(void);
RT_API void rt_cpu_reset_peak(void);
RT_API int rt_tensor_ndim(rt_tensor t);
RT_API int rt_tensor_shape(rt_tensor t, int64_t* out);
RT_API int rt_tensor_strides(rt_tensor t, int64_t* out);
RT_API int64_t rt_tensor_numel(rt_tensor t);
RT_API int rt_tensor_dtype(rt_tensor t);
RT_API int rt_tensor_element_size(rt_tensor t);
RT_API int rt_tensor_device_type(rt_tensor t);
RT_API int rt_tensor_device_index(rt_tensor t);
RT_API int rt_tensor_is_contiguous(rt_tensor t);
RT_API int rt_tensor_requires_grad(rt_tensor t);
RT_API int rt_tensor_is_leaf(rt_tensor t);
RT_API int rt_tensor_has_grad_fn(rt_tensor t);
// The name of the autograd node that made t (e.g. "MmBackward0"), "" for a leaf; free with rt_free_string.
RT_API char* rt_tensor_grad_fn_name(rt_tensor t);
RT_API int64_t rt_tensor_storage_nbytes(rt_tensor t);
// Data pointer of a CPU tensor (NULL for CUDA): valid while the tensor lives. Not necessarily contiguous.
RT_API void* rt_tensor_data_ptr(rt_tensor t);
RT_API char* rt_tensor_to_string(rt_tensor t);
RT_API int rt_tensor_item_double(rt_tensor t, double* out);
RT_API int rt_tensor_item_long(rt_tensor t, int64_t* out);
// Copies the elements (row-major, contiguous) into dst, which holds nbytes.
RT_API int rt_tensor_copy_to(rt_tensor t, void* dst, int64_t nbytes);
RT_API int rt_get_num_threads(void);
RT_API int rt_set_num_threads(int n);
RT_API int rt_get_num_interop_threads(void);
RT_API char* rt_version(void);
RT_API char* rt_show_config(void);
RT_API char* rt_parallel_info(void);
RT_API int rt_cuda_is_available(void);
RT_API int rt_cuda_device_count(void);
RT_API int rt_has_gloo(void);
RT_API int rt_has_nccl(void);
RT_API int rt_cuda_synchronize(int index);
RT_API int rt_manual_seed(uint64_t seed);
RT_API rt_generator rt_generator_new(uint64_t seed, int dev_type, int dev_index);
RT_API void rt_generator_free(rt_generator g);
RT_API int rt_generator_set_seed(rt_generator g, uint64_t seed);
RT_API uint64_t rt_generator_seed(rt_generator g);
RT_API rt_tensor rt_generator_get_state(rt_generator g);
RT_API int rt_generator_set_state(rt_generator g, rt_tensor state);

/* ---- Creation: filled, ranges, random (explicit seeded generators), from host memory (create.cpp) ---- */

RT_API rt_tensor rt_empty(const int64_t* shape, int ndim, int dtype, int dev_type, int dev_index);
RT_API rt_tensor rt_zeros(const int64_t* shape, int ndim, int dtype, int dev_type, int dev_index);
RT_API rt_tensor rt_ones(const int64_t* shape, int ndim, int dtype, int dev_type, int dev_index);
RT_API rt_tensor rt_full(const int64_t* shape, int ndim, double value, int dtype, int dev_type, int dev_index);
RT_API rt_tensor rt_full_long(const int64_t* shape, int ndim, int64_t value, int dtype, int dev_type, int dev_index);
RT_API rt_tensor rt_arange(double start, double end, double step, int dtype, int dev_type, int dev_index);
RT_API rt_tensor rt_linspace(double start, double end, int64_t steps, int dtype, int dev_type, int dev_index);
RT_API rt_tensor rt_eye(int64_t n, int dtype, int dev_type, int dev_index);
RT_API rt_tensor rt_zeros_like(rt_tensor t);
RT_API rt_tensor rt_ones_like(rt_tensor t);
RT_API rt_tensor rt_empty_like(rt_tensor t);
RT_API rt_tensor rt_full_like(rt_tensor t, double v);
RT_API rt_tensor rt_randn(const int64_t* shape, int ndim, rt_generator g, int dtype, int dev_type, int dev_index);
RT_API rt_tensor rt_rand(const int64_t* shape, int ndim, rt_generator g, int dtype, int dev_type, int dev_index);
RT_API rt_tensor rt_randint(int64_t low, int64_t high, const int64_t* shape, int ndim, rt_generator g, int dtype, int dev_type, int dev_index);
RT_API rt_tensor rt_randperm(int64_t n, rt_generator g, int dtype, int dev_type, int dev_index);
RT_API int rt_normal_(rt_tensor t, double mean, double std, rt_generator g);
RT_API int rt_uniform_(rt_tensor t, double from, double to, rt_generator g);
RT_API int rt_bernoulli_(rt_tensor t, double p, rt_generator g);
// Copies nbytes of host memory into a new CPU tensor of the given shape and dtype, then moves it to the device.
RT_API rt_tensor rt_from_data(const void* data, int64_t nbytes, const int64_t* shape, int ndim, int dtype, int dev_type, int dev_index);

/* ---- Shape, views, indexing, joining, dtype and device conversion (shape.cpp) ---- */

RT_API rt_tensor rt_view(rt_tensor t, const int64_t* shape, int n);
RT_API rt_tensor rt_reshape(rt_tensor t, const int64_t* shape, int n);
RT_API rt_tensor rt_transpose(rt_tensor t, int64_t d0, int64_t d1);
RT_API rt_tensor rt_permute(rt_tensor t, const int64_t* dims, int n);
RT_API rt_tensor rt_narrow(rt_tensor t, int64_t dim, int64_t start, int64_t length);
RT_API rt_tensor rt_slice(rt_tensor t, int64_t dim, int64_t start, int64_t end, int64_t step);
RT_API rt_tensor rt_select(rt_tensor t, int64_t dim, int64_t index);
RT_API rt_tensor rt_squeeze(rt_tensor t);
RT_API rt_tensor rt_squeeze_dim(rt_tensor t, int64_t dim);
RT_API rt_tensor rt_unsqueeze(rt_tensor t, int64_t dim);
RT_API rt_tensor rt_flatten(rt_tensor t, int64_t start, int64_t end);
RT_API rt_tensor rt_expand(rt_tensor t, const int64_t* shape, int n);
RT_API rt_tensor rt_repeat(rt_tensor t, const int64_t* reps, int n);
RT_API rt_tensor rt_repeat_interleave(rt_tensor t, int64_t repeats, int64_t dim);
RT_API rt_tensor rt_repeat_interleave_t(rt_tensor t, rt_tensor repeats, int64_t dim);
RT_API rt_tensor rt_flip(rt_tensor t, const int64_t* dims, int n);
RT_API rt_tensor rt_contiguous(rt_tensor t);
RT_API rt_tensor rt_tril(rt_tensor t, int64_t k);
RT_API rt_tensor rt_triu(rt_tensor t, int64_t k);
RT_API rt_tensor rt_roll(rt_tensor t, int64_t shift, int64_t dim);
RT_API rt_tensor rt_index_select(rt_tensor t, int64_t dim, rt_tensor idx);
RT_API rt_tensor rt_gather(rt_tensor t, int64_t dim, rt_tensor idx);
RT_API rt_tensor rt_scatter(rt_tensor t, int64_t dim, rt_tensor idx, rt_tensor src);
RT_API rt_tensor rt_scatter_add(rt_tensor t, int64_t dim, rt_tensor idx, rt_tensor src);
RT_API int rt_scatter_(rt_tensor t, int64_t dim, rt_tensor idx, rt_tensor src);
RT_API int rt_scatter_add_(rt_tensor t, int64_t dim, rt_tensor idx, rt_tensor src);
RT_API int rt_index_copy_(rt_tensor t, int64_t dim, rt_tensor idx, rt_tensor src);
RT_API rt_tensor rt_index_copy(rt_tensor t, int64_t dim, rt_tensor idx, rt_tensor src);
RT_API int rt_index_fill_(rt_tensor t, int64_t dim, rt_tensor idx, double v);
RT_API int rt_index_add_(rt_tensor t, int64_t dim, rt_tensor idx, rt_tensor src);
RT_API rt_tensor rt_index(rt_tensor t, const rt_tensor* idx, int n);
RT_API int rt_index_put_(rt_tensor t, const rt_tensor* idx, int n, rt_tensor v, int accumulate);
RT_API rt_tensor rt_index_put(rt_tensor t, const rt_tensor* idx, int n, rt_tensor v, int accumulate);
RT_API rt_tensor rt_masked_fill(rt_tensor t, rt_tensor mask, double v);
RT_API int rt_masked_fill_(rt_tensor t, rt_tensor mask, double v);
RT_API rt_tensor rt_masked_select(rt_tensor t, rt_tensor mask);
RT_API rt_tensor rt_where(rt_tensor cond, rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_where_scalar(rt_tensor cond, rt_tensor a, double b);
RT_API rt_tensor rt_nonzero(rt_tensor t);
RT_API rt_tensor rt_cat(const rt_tensor* ts, int n, int64_t dim);
RT_API rt_tensor rt_stack(const rt_tensor* ts, int n, int64_t dim);
RT_API int rt_split(rt_tensor t, int64_t size, int64_t dim, rt_tensor* out, int cap, int* count);
RT_API int rt_split_sizes(rt_tensor t, const int64_t* sizes, int n, int64_t dim, rt_tensor* out, int cap, int* count);
RT_API int rt_chunk(rt_tensor t, int64_t chunks, int64_t dim, rt_tensor* out, int cap, int* count);
RT_API int rt_unbind(rt_tensor t, int64_t dim, rt_tensor* out, int cap, int* count);

/* ---- Element-wise math, matmul, comparisons (math.cpp) ---- */

RT_API rt_tensor rt_add(rt_tensor a, rt_tensor b, double alpha);
RT_API rt_tensor rt_sub(rt_tensor a, rt_tensor b, double alpha);
RT_API rt_tensor rt_mul(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_div(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_div_mode(rt_tensor a, rt_tensor b, const char* mode);
RT_API rt_tensor rt_div_scalar_mode(rt_tensor a, double s, const char* mode);
RT_API rt_tensor rt_add_scalar(rt_tensor a, double s);
RT_API rt_tensor rt_mul_scalar(rt_tensor a, double s);
RT_API rt_tensor rt_div_scalar(rt_tensor a, double s);
RT_API rt_tensor rt_rsub_scalar(rt_tensor a, double s);
RT_API rt_tensor rt_pow_scalar(rt_tensor a, double s);
RT_API rt_tensor rt_remainder_scalar(rt_tensor a, double s);
RT_API rt_tensor rt_pow(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_remainder(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_minimum(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_maximum(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_atan2(rt_tensor a, rt_tensor b);
RT_API int rt_add_(rt_tensor a, rt_tensor b, double alpha);
RT_API int rt_sub_(rt_tensor a, rt_tensor b, double alpha);
RT_API int rt_mul_(rt_tensor a, rt_tensor b);
RT_API int rt_div_(rt_tensor a, rt_tensor b);
RT_API int rt_add_scalar_(rt_tensor a, double s);
RT_API int rt_mul_scalar_(rt_tensor a, double s);
RT_API int rt_div_scalar_(rt_tensor a, double s);
RT_API int rt_pow_scalar_(rt_tensor a, double s);
RT_API int rt_addcmul_(rt_tensor a, rt_tensor b, rt_tensor c, double v);
RT_API int rt_addcdiv_(rt_tensor a, rt_tensor b, rt_tensor c, double v);
RT_API int rt_lerp_(rt_tensor a, rt_tensor b, double w);
RT_API int rt_clamp_(rt_tensor t, double lo, double hi, int has_lo, int has_hi);
RT_API int rt_fill_(rt_tensor t, double v);
RT_API int rt_zero_(rt_tensor t);
RT_API int rt_copy_(rt_tensor dst, rt_tensor src, int non_blocking);
RT_API int rt_set_data(rt_tensor dst, rt_tensor src);
RT_API rt_tensor rt_clamp(rt_tensor t, double lo, double hi, int has_lo, int has_hi);
RT_API rt_tensor rt_clamp_t(rt_tensor t, rt_tensor lo, rt_tensor hi);
RT_API rt_tensor rt_neg(rt_tensor t);
RT_API rt_tensor rt_exp(rt_tensor t);
RT_API rt_tensor rt_expm1(rt_tensor t);
RT_API rt_tensor rt_log(rt_tensor t);
RT_API rt_tensor rt_log1p(rt_tensor t);
RT_API rt_tensor rt_log2(rt_tensor t);
RT_API rt_tensor rt_sqrt(rt_tensor t);
RT_API rt_tensor rt_rsqrt(rt_tensor t);
RT_API rt_tensor rt_abs(rt_tensor t);
RT_API rt_tensor rt_sign(rt_tensor t);
RT_API rt_tensor rt_square(rt_tensor t);
RT_API rt_tensor rt_reciprocal(rt_tensor t);
RT_API rt_tensor rt_sin(rt_tensor t);
RT_API rt_tensor rt_cos(rt_tensor t);
RT_API rt_tensor rt_tanh(rt_tensor t);
RT_API rt_tensor rt_erf(rt_tensor t);
RT_API rt_tensor rt_sigmoid(rt_tensor t);
RT_API rt_tensor rt_logsigmoid(rt_tensor t);
RT_API rt_tensor rt_relu(rt_tensor t);
RT_API rt_tensor rt_silu(rt_tensor t);
RT_API rt_tensor rt_floor(rt_tensor t);
RT_API rt_tensor rt_ceil(rt_tensor t);
RT_API rt_tensor rt_round(rt_tensor t);
RT_API rt_tensor rt_isnan(rt_tensor t);
RT_API rt_tensor rt_isinf(rt_tensor t);
RT_API rt_tensor rt_isfinite(rt_tensor t);
RT_API rt_tensor rt_logical_not(rt_tensor t);
RT_API rt_tensor rt_clone(rt_tensor t);
RT_API rt_tensor rt_detach(rt_tensor t);
RT_API int rt_neg_(rt_tensor t);
RT_API int rt_exp_(rt_tensor t);
RT_API int rt_sqrt_(rt_tensor t);
RT_API int rt_relu_(rt_tensor t);
RT_API rt_tensor rt_gelu(rt_tensor t, int tanh_approx);
RT_API rt_tensor rt_softplus(rt_tensor t, double beta, double threshold);
RT_API rt_tensor rt_matmul(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_mm(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_bmm(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_outer(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_addmm(rt_tensor bias, rt_tensor a, rt_tensor b, double beta, double alpha);
RT_API rt_tensor rt_baddbmm(rt_tensor bias, rt_tensor a, rt_tensor b, double beta, double alpha);
// x·wᵀ (+ b), as aten::linear (linear.cpp): float32 CPU training products (autograd on, enough rows, 2+ threads) run
// split into independent single-threaded BLAS calls (forward by rows; backward dx beside dw) where the shim is built
// with OpenMP (Debian's libtorch) and the BLAS is OpenBLAS's OpenMP build.
RT_API rt_tensor rt_linear(rt_tensor x, rt_tensor w, rt_tensor b);
// 1 when rt_linear's split kernel is built in and not turned off (RLHF_LINEAR_KERNEL=0), else 0.
RT_API int rt_linear_kernel_available(void);
// Comparisons and logic.
RT_API rt_tensor rt_eq(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_ne(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_lt(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_le(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_gt(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_ge(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_eq_scalar(rt_tensor a, double s);
RT_API rt_tensor rt_ne_scalar(rt_tensor a, double s);
RT_API rt_tensor rt_lt_scalar(rt_tensor a, double s);
RT_API rt_tensor rt_le_scalar(rt_tensor a, double s);
RT_API rt_tensor rt_gt_scalar(rt_tensor a, double s);
RT_API rt_tensor rt_ge_scalar(rt_tensor a, double s);
RT_API rt_tensor rt_logical_and(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_logical_or(rt_tensor a, rt_tensor b);
RT_API rt_tensor rt_logical_xor(rt_tensor a, rt_tensor b);
RT_API int rt_equal(rt_tensor a, rt_tensor b);
RT_API int rt_allclose(rt_tensor a, rt_tensor b, double rtol, double atol);
// Conversions.
RT_API rt_tensor rt_to_dtype(rt_tensor t, int dtype);
RT_API rt_tensor rt_to_device(rt_tensor t, int dev_type, int dev_index, int non_blocking);
RT_API rt_tensor rt_pin_memory(rt_tensor t);

/* ---- Reductions, sorting, top-k, cumulative ops (reduce.cpp) ---- */

RT_API rt_tensor rt_sum_all(rt_tensor t, int dtype);
RT_API rt_tensor rt_sum(rt_tensor t, const int64_t* dims, int n, int keepdim, int dtype);
RT_API rt_tensor rt_mean_all(rt_tensor t);
RT_API rt_tensor rt_mean(rt_tensor t, const int64_t* dims, int n, int keepdim);
RT_API rt_tensor rt_prod_all(rt_tensor t);
// Variance / std with an explicit correction (1 = Bessel). n == 0 means over all elements.
RT_API rt_tensor rt_var(rt_tensor t, const int64_t* dims, int n, int64_t correction, int keepdim);
RT_API rt_tensor rt_std(rt_tensor t, const int64_t* dims, int n, int64_t correction, int keepdim);
RT_API rt_tensor rt_max_all(rt_tensor t);
RT_API rt_tensor rt_min_all(rt_tensor t);
RT_API int rt_max_dim(rt_tensor t, int64_t dim, int keepdim, rt_tensor* values, rt_tensor* indices);
RT_API int rt_min_dim(rt_tensor t, int64_t dim, int keepdim, rt_tensor* values, rt_tensor* indices);
RT_API rt_tensor rt_argmax(rt_tensor t, int64_t dim, int keepdim);
RT_API rt_tensor rt_argmin(rt_tensor t, int64_t dim, int keepdim);
RT_API int rt_topk(rt_tensor t, int64_t k, int64_t dim, int largest, int sorted, rt_tensor* values, rt_tensor* indices);
RT_API int rt_sort(rt_tensor t, int64_t dim, int descending, int stable, rt_tensor* values, rt_tensor* indices);
RT_API rt_tensor rt_argsort(rt_tensor t, int64_t dim, int descending);
RT_API rt_tensor rt_any_all(rt_tensor t);
RT_API rt_tensor rt_all_all(rt_tensor t);
RT_API rt_tensor rt_any(rt_tensor t, int64_t dim, int keepdim);
RT_API rt_tensor rt_all(rt_tensor t, int64_t dim, int keepdim);
RT_API rt_tensor rt_norm_all(rt_tensor t, double p);
RT_API rt_tensor rt_norm(rt_tensor t, double p, const int64_t* dims, int n, int keepdim);
RT_API rt_tensor rt_count_nonzero_all(rt_tensor t);
RT_API rt_tensor rt_count_nonzero(rt_tensor t, int64_t dim);
RT_API rt_tensor rt_cumsum(rt_tensor t, int64_t dim);
RT_API rt_tensor rt_cumprod(rt_tensor t, int64_t dim);
RT_API rt_tensor rt_logsumexp(rt_tensor t, const int64_t* dims, int n, int keepdim);
RT_API rt_tensor rt_softmax(rt_tensor t, int64_t dim);
RT_API rt_tensor rt_log_softmax(rt_tensor t, int64_t dim);
// Fused paged decode attention (float32, CPU, no autograd): q [B, KV, M, hd]; k_rows, v_rows [R, hd] (the cache's rows);
// rows [B, KV, C] int64 (the row of each key position); blocked [B, Q, C] bool, Q dividing M (query row m uses
// blocked[b, m % Q]; true = not attended). Returns softmax(scale · q·kᵀ, blocked excluded) · v as [B, KV, M, hd].
RT_API rt_tensor rt_paged_decode_attention(rt_tensor q, rt_tensor k_rows, rt_tensor v_rows, rt_tensor rows, rt_tensor blocked, double scale);
// Causal self-attention with autograd (training, float32 CPU): q, k, v [B, H, T, hd] (grouped key/value heads repeated),
// key_allowed [B, T] (nonzero = real key) or NULL; query t attends keys s <= t that are allowed; a query with no allowed
// key gets a uniform row over all T keys (eager masked_fill(lowest) + softmax). Returns [B, H, T, hd].
RT_API rt_tensor rt_causal_attention(rt_tensor q, rt_tensor k, rt_tensor v, rt_tensor key_allowed, double scale);
// Fused RMSNorm with autograd (fused.cpp): w · x / √(mean(x²) + eps) over x's last dim; float32/float64 CPU.
RT_API rt_tensor rt_rms_norm(rt_tensor x, rt_tensor weight, double eps);
// Fused rotary embedding with autograd (fused.cpp): x ⊙ cos + rotate_half(x) ⊙ sin; x [B, H, T, hd], tables [B|1, 1, T, hd];
// returns contiguous [B, H, T, hd]; float32/float64 CPU; the tables get no gradient.
RT_API rt_tensor rt_rotary(rt_tensor x, rt_tensor cos, rt_tensor sin);
// Fused SwiGLU product with autograd (fused.cpp): silu(gate) · up, same shapes; float32/float64 CPU.
RT_API rt_tensor rt_silu_mul(rt_tensor gate, rt_tensor up);
// libtorch's operator profiler on the calling thread (profile.cpp): begin starts recording; end writes a Chrome trace
// of every op and autograd node since begin to trace_path. 0 on success, -1 with an error (already/not recording).
RT_API int rt_profile_begin(const char* trace_path);
RT_API int rt_profile_end(void);

/* ---- Neural-network functionals (nn.cpp) ---- */

RT_API rt_tensor rt_embedding(rt_tensor weight, rt_tensor ids);
RT_API rt_tensor rt_layer_norm(rt_tensor x, const int64_t* shape, int n, rt_tensor w, rt_tensor b, double eps);
// reduction: 0 none, 1 mean, 2 sum (at::Reduction).
RT_API rt_tensor rt_cross_entropy(rt_tensor logits, rt_tensor target, int64_t ignore_index, int reduction, double label_smoothing);
RT_API rt_tensor rt_nll_loss(rt_tensor logp, rt_tensor target, int64_t ignore_index, int reduction);
RT_API rt_tensor rt_mse_loss(rt_tensor a, rt_tensor b, int reduction);
RT_API rt_tensor rt_multinomial(rt_tensor probs, int64_t n, int replacement, rt_generator g);
// Dropout with an explicit generator (mask ~ Bernoulli(1-p), scaled by 1/(1-p)); identity when not training.
RT_API rt_tensor rt_dropout(rt_tensor x, double p, int train, rt_generator g);
RT_API rt_tensor rt_one_hot(rt_tensor ids, int64_t classes);

/* ---- Autograd (autograd.cpp) ---- */

RT_API int rt_requires_grad_(rt_tensor t, int on);
RT_API int rt_backward(rt_tensor t, rt_tensor grad, int retain_graph, int create_graph);
RT_API int rt_grad(rt_tensor t, rt_tensor* out);
RT_API int rt_set_grad(rt_tensor t, rt_tensor g);
RT_API int rt_zero_grad(rt_tensor t, int set_to_none);
RT_API int rt_retain_grad(rt_tensor t);
RT_API int rt_is_grad_enabled(void);
RT_API void rt_set_grad_enabled(int on);
// grads of outputs w.r.t. inputs; out[i] is NULL where an input is unused (allow_unused).
RT_API int rt_autograd_grad(const rt_tensor* outputs, int n_out, const rt_tensor* inputs, int n_in, const rt_tensor* grad_outputs, int retain_graph, int create_graph, int allow_unused, rt_tensor* out);

/* ---- Optimizer steps (optim.cpp) ---- */

// One AdamW step (Loshchilov & Hutter; torch.optim.AdamW semantics) over params[i] with grads[i]
// and state (exp_avg, exp_avg_sq). `step` is the 1-based step count after this update.
// p <- p * (1 - lr*wd);  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
// p <- p - lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps),  bc_i = 1 - b_i^step.
RT_API int rt_adamw_step(const rt_tensor* params, const rt_tensor* grads, const rt_tensor* exp_avg, const rt_tensor* exp_avg_sq, int n, double lr, double beta1, double beta2, double eps, double weight_decay, int64_t step);
// Sum of squares of every tensor (NULLs skipped), accumulated in double.
RT_API int rt_sum_squares(const rt_tensor* ts, int n, double* out);
// Scales every tensor in place by `factor` (used by clipping across shards).
RT_API int rt_scale_(const rt_tensor* ts, int n, double factor);
// Clips the global L2 norm of the tensors to max_norm (torch.nn.utils.clip_grad_norm_); returns the norm before clipping.
RT_API int rt_clip_grad_norm_(const rt_tensor* ts, int n, double max_norm, double* total_norm);

/* ---- c10d: stores, process groups, collectives (each returns a work to wait on); without c10d each fails (dist.cpp) ---- */

// A TCPStore: rank 0 hosts it (is_server), everyone connects to host:port. timeout_ms bounds every wait.
RT_API rt_store rt_store_tcp_new(const char* host, int port, int is_server, int num_workers, int64_t timeout_ms);
// A PrefixStore over `inner` (the default group uses "default_pg").
RT_API rt_store rt_store_prefix_new(const char* prefix, rt_store inner);
RT_API void rt_store_free(rt_store s);
RT_API int rt_store_set(rt_store s, const char* key, const uint8_t* value, int64_t len);
// Blocks until `key` exists (up to the store timeout); the value is returned as a malloc'd buffer
// freed with rt_free_string (it is NUL-terminated as a convenience; *len excludes the NUL).
RT_API int rt_store_get(rt_store s, const char* key, char** out, int64_t* len);
RT_API int rt_store_add(rt_store s, const char* key, int64_t delta, int64_t* out);
// ProcessGroupGloo over `store` with one device bound to `host` (the address peers reach us on).
RT_API rt_pg rt_pg_gloo_new(rt_store store, int rank, int size, const char* host, int64_t timeout_ms);
// ProcessGroupNCCL (CUDA libtorch only); tensors given to it must live on this rank's CUDA device.
RT_API rt_pg rt_pg_nccl_new(rt_store store, int rank, int size, int64_t timeout_ms);
RT_API void rt_pg_free(rt_pg g);
// In-place all-reduce (op: 0 sum, 1 max, 2 min, 3 product).
RT_API rt_work rt_pg_allreduce(rt_pg g, rt_tensor t, int op);
// In-place broadcast from `root`.
RT_API rt_work rt_pg_broadcast(rt_pg g, rt_tensor t, int root);
// In-place reduce to `root` (other ranks' tensors are left in an unspecified state, as in c10d).
RT_API rt_work rt_pg_reduce(rt_pg g, rt_tensor t, int root, int op);
// All-gather of equal shards: `output` (contiguous, numel = size × numel(input)) receives rank r's
// input at [r·n, (r+1)·n). Callers pad their shard to the common length first.
RT_API rt_work rt_pg_allgather(rt_pg g, rt_tensor input, rt_tensor output);
// Reduce-scatter of equal shards: `input` has size × n elements, `output` n; rank r receives the
// reduction of every rank's [r·n, (r+1)·n). NCCL: native _reduce_scatter_base. Gloo (which cannot):
// all-reduce of a staging copy, then this rank's slice is copied out after the wait.
RT_API rt_work rt_pg_reduce_scatter(rt_pg g, rt_tensor input, rt_tensor output, int op);
RT_API rt_work rt_pg_barrier(rt_pg g);
RT_API rt_work rt_pg_send(rt_pg g, rt_tensor t, int dst, int tag);
RT_API rt_work rt_pg_recv(rt_pg g, rt_tensor t, int src, int tag);
// Waits for the work; on failure the message names this rank and the operation. Idempotent.
RT_API int rt_work_wait(rt_work w);
RT_API int rt_work_is_completed(rt_work w);
RT_API void rt_work_free(rt_work w);

/* ---- Checkpoint shard files: a pickled dict of named tensors (checkpoint.cpp) ---- */

// Writes {names[i]: tensors[i]} as one pickled dict to `path`, flushed before returning (callers write to a
// temporary name and rename). 0 ok, -1 error.
RT_API int rt_tensors_save(const char* path, const char* const* names, const rt_tensor* ts, int n);
// Reads a file written by rt_tensors_save, once: returns the entry count (-1 on error) and, in file order, the
// names (each freed with rt_free_string) and new tensor handles, in two arrays freed with rt_free_buffer.
RT_API int rt_tensors_load(const char* path, char*** names, rt_tensor** tensors);
#endif
