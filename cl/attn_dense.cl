/*
 * attn_dense.cl - the threshold pass's dense sweep as a program of its own (NVIDIA path):
 * attn_tau_dense (attn_tau.clh) with ASP_TQ query rows per work-group, a multiple of the forward
 * program's tile side ASP_T (which stays the key tile, the bitmap tile and the row block of the
 * tile maxima it writes). Compiled per (dtype, padded head dim, forward plan, ASP_TQ).
 */
#define ASP_TAU_DENSE_PROGRAM 1
#include "common.clh"
#include "entmax_solver.clh"
#include "tile.clh"
#include "attn_tau.clh"
