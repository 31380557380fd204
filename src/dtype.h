/*
 * dtype.h - host-side scalar conversions between fp32 and the 16-bit storage formats.
 */
#ifndef ASP_DTYPE_H
#define ASP_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "adasplash.h"

uint16_t asp_f32_to_f16(float f);
float asp_f16_to_f32(uint16_t h);
uint16_t asp_f32_to_bf16(float f);
float asp_bf16_to_f32(uint16_t b);
float asp_load_as_f32(const void *base, adasplash_dtype dtype, size_t index);
void asp_store_from_f32(void *base, adasplash_dtype dtype, size_t index, float value);

#endif /* ASP_DTYPE_H */
