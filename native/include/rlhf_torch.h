/* rlhf_torch: the C ABI of Rlhf's libtorch shim.
 *
 * Conventions (see shared/STYLE.md):
 *  - every export is extern "C", named area_op (rt_tensor_add); in-place ops end in '_';
 *  - tensors cross as opaque handles (rt_tensor = at::Tensor*), freed with rt_tensor_free;
 *  - a function returning a handle returns NULL only on error; one returning int returns 0 on
 *    success and -1 on error; an *undefined* tensor (e.g. a missing grad) is reported through an
 *    out-parameter set to NULL with status 0, never as an error;
 *  - after an error, rt_take_error() returns the message (caller frees it with rt_free_string)
 *    and clears it; every export catches c10::Error, std::exception and anything else;
 *  - arrays cross as pointer + length; lists of known length are written into caller buffers.
 */
#ifndef RLHF_TORCH_H
#define RLHF_TORCH_H
#include <stdint.h>
#include <stddef.h>

#define RT_API extern "C" __attribute__((visibility("default")))

#ifdef __cplusplus
namespace at { class Tensor; class Generator; }
typedef at::Tensor* rt_tensor;
typedef at::Generator* rt_generator;
#else
typedef void* rt_tensor;
typedef void* rt_generator;
#endif

#endif
