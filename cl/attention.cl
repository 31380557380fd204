/*
 * attention.cl - the fused alpha-entmax attention program (portable path): threshold pass,
 * output pass and backward kernels, compiled per (dtype, padded head dim, tile configuration).
 */
#include "common.clh"
#include "entmax_solver.clh"
#include "tile.clh"
#include "attn_tau.clh"
#include "attn_fwd.clh"
#include "attn_bwd.clh"
