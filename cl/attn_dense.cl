/*
 * attn_dense.cl - the threshold pass's dense sweep as a program of its own (NVIDIA path):
 * attn_tau_dense (attn_tau.clh) with ASP_TQ query rows per work-group against key tiles of ASP_T
 * keys, both multiples of the forward program's tile side ASP_TSUB (the bitmap tile and the block
 * of the tile maxima it writes, in the forward's layout). Compiled per (dtype, padded head dim,
 * forward plan, ASP_TQ, ASP_T).
 */
#define ASP_TAU_DENSE_PROGRAM 1
#include "common.clh"
#include "entmax_solver.clh"
#include "tile.clh"
#include "attn_tau.clh"
