/*
 * attn_alpha.cl - the output pass that also saves the alpha gradient's terms (attn_forward_alpha,
 * attn_out.clh), a program of its own: it is the largest of the output kernels, and only a prepare
 * whose desc asks for the alpha gradient (ADASPLASH_ATTN_SAVE_ALPHA_GRAD) compiles it. Compiled
 * per forward plan (the same defines as attn_forward.cl).
 */
#include "common.clh"
#include "entmax_solver.clh"
#include "tile.clh"
#include "attn_out.clh"

ASP_ENTMAX_FORWARD_KERNEL(attn_forward_alpha, ASP_SAVE_ALPHA_GRAD)
