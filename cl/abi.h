/*
 * abi.h - the host-kernel ABI of the attention programs, included by the OpenCL C kernels and by
 * the host C code (src/), so that nothing is defined twice:
 *   - the tensor layout and problem geometry structs the kernels take by value;
 *   - asp_attn_args, the by-value parameter struct of every attention kernel;
 *   - the indices of the per-row state, the per-row statistics and the per-block statistics that
 *     the saved buffer holds;
 *   - the tile implementations and their local-memory formulas (bytes of the one local arena each
 *     attention kernel declares; the host plans with the same macros).
 * Plain C90 subset: the OpenCL C compiler and the host C compiler see the same text.
 */
#ifndef ASP_ABI_H
#define ASP_ABI_H

#if defined(__OPENCL_VERSION__) || defined(__OPENCL_C_VERSION__)
typedef ulong asp_u64;
typedef int asp_i32;
typedef float asp_f32;
#else
#include <CL/cl_platform.h>
typedef cl_ulong asp_u64;
typedef cl_int asp_i32;
typedef cl_float asp_f32;
#endif

/* A [batch, heads, seq, head_dim] tensor inside its buffer (element offsets and strides). */
typedef struct asp_layout {
  asp_u64 off, bs, hs, ss;
} asp_layout;

/* Problem geometry shared by every attention kernel. nqb/nkb: query row blocks and key tiles of
 * the plan's tile; wk/wq: 32-bit bitmap words per row block (over key tiles) and per key tile
 * (over row blocks). */
typedef struct asp_geom {
  asp_i32 batch, q_heads, kv_heads, q_len, kv_len, head_dim;
  asp_i32 causal, has_qlens, has_kvlens;
  asp_i32 nqb, nkb;
  asp_i32 wk, wq;
  asp_i32 nseg; /* row segments per block (tile maxima are kept per segment) */
} asp_geom;

/* The parameters of one attention call, by value (buffers are separate kernel arguments). */
typedef struct asp_attn_args {
  asp_layout q, k, v, o; /* o: the output's layout (dO and dQ-like tensors share q's or o's) */
  asp_geom g;
  asp_f32 alpha;  /* scalar alpha (unless has_alpha: per-head alpha buffer) */
  asp_f32 scale;  /* logit scale z = scale * q.k */
  asp_f32 tol;    /* solver tolerance on |sum p - 1| */
  asp_f32 qscale; /* quantisation of the histogram's in-bin moments */
  asp_i32 has_alpha, max_iter, use_hist;
  asp_i32 write_t;   /* threshold pass: also write the transposed bitmap (training) */
  asp_i32 aligned16; /* every row of q, k, v, o starts on 16 bytes and head_dim % 8 == 0 */
  asp_i32 fuse;      /* forward, alpha 1.5 / 2: the refinement sweep runs inside the output pass
                        (attn_fused.clh) for the blocks attn_tau marks (ASP_STAT_FUSE 1) */
  asp_i32 retry;     /* forward: this launch redoes only the blocks whose fused output pass fell
                        back (ASP_STAT_FUSE 2) the separate way; the others return at once */
} asp_attn_args;

/* Per-row solver state (saved): [rows][ASP_ROWSTATE_COUNT] floats, the row max m of the scaled
 * scores x = (alpha-1) * scale * q.k and tau relative to it (tau - m: the solver works relative to
 * the max, so tau = m + t is never rounded to fp32; scores enter as (x - m) - t). An empty row
 * stores m = 0, t = +inf; a row with non-finite scores m = t = NaN. */
#define ASP_ROWSTATE_MAX 0
#define ASP_ROWSTATE_TAU 1
#define ASP_ROWSTATE_COUNT 2

/* Per-row statistics for the backward (saved): measured sum of p, H = sum(p^ ln p^) of the
 * normalised p. */
#define ASP_ROWSTAT_L 0
#define ASP_ROWSTAT_H 1
#define ASP_ROWSTAT_COUNT 2

/* Per-row-block statistics (ints): sweeps, converged flag, active tiles, visible tiles, residual
 * (float bits, written by the output pass), valid rows. */
#define ASP_STAT_SWEEPS 0
#define ASP_STAT_CONVERGED 1
#define ASP_STAT_ACTIVE 2
#define ASP_STAT_VISIBLE 3
#define ASP_STAT_RESIDUAL 4
#define ASP_STAT_ROWS 5
#define ASP_STAT_REFINE_TILES 6 /* key tiles the refinement sweeps visited, summed over sweeps */
#define ASP_STAT_FUSE \
  7 /* 0: refined by attn_tau; 1: solved in the fused output pass; 2: it fell back */
#define ASP_STAT_COUNT 8

/* Fused refinement (args.fuse): what attn_tau leaves per row for the fused output pass, the row
 * solver after the row start (asp_row_solver, at most 64 bytes), [rows][ASP_ROWSOLVER_WORDS]. */
#define ASP_ROWSOLVER_WORDS 16

/* What the output pass keeps for the backward. */
#define ASP_SAVE_NONE 0       /* inference */
#define ASP_SAVE_GRAD 1       /* out2 = sum(s v) / sum(s) and the row statistics */
#define ASP_SAVE_ALPHA_GRAD 2 /* and Z, with dL/dalpha of a row = dO . Z */

/* The alpha an entmax attention program is compiled for (-DASP_ALPHA_CLASS; a field of the host's
 * variant key): ASP_ALPHA_ANY reads alpha per call or per head at run time and keeps the formulas
 * of every alpha; ASP_ALPHA_15 and ASP_ALPHA_2 are compiled for calls whose desc has that scalar
 * alpha and no per-head buffer, without the other alphas' formulas (fewer registers, shorter
 * loops). The solver's modes (entmax_solver.clh) take the same values. */
#define ASP_ALPHA_ANY 0
#define ASP_ALPHA_15 1
#define ASP_ALPHA_2 2

/* ---- tile implementations ---------------------------------------------------------------------
 * ASP_TILE_IMPL selects the header that implements the tile contract (cl/tile.clh):
 *   ASP_TILE_PORTABLE  register blocks over local memory, fp32 FMA (OpenCL C 1.2, every device);
 *   ASP_TILE_NV_MMA    mma.sync m16n8k16 fragments, ldmatrix, cp.async (inline PTX, NVIDIA
 *                      compute capability >= 8.0, fp16/bf16 storage).
 */
#define ASP_TILE_PORTABLE 0
#define ASP_TILE_NV_MMA 1

/* Local-memory arena of an attention kernel, in bytes, as a function of its plan. Every attention
 * kernel declares exactly one __local arena (16-byte aligned): its products' part first
 * (ASP_TILE_PRODUCT_BYTES of the implementation, below per implementation), then its pass's part;
 * the host computes the same numbers to plan tiles against the device's local memory, and a test
 * compares them with CL_KERNEL_LOCAL_MEM_SIZE.
 *
 * A kernel's products are described by (NB, KEEP, PPROD): NB staged B operands per tile, KEEP
 * resident A operands that asp_mm_ptr reads, PPROD 0 (S = A B^T only), 1 (and P B) or 2 (and
 * P^T A).
 * Portable products (tile_portable.clh): two staging chunks of DK x T floats (the A and B chunk
 * of S = A B^T; B chunks of the P products reuse them as T x DK), a row-reduction buffer (T x TC
 * floats) and the P tile (T x T floats) when P products are used. */
#define ASP_PT_PRODUCT_BYTES(T, TC, DK, PPROD) \
  (4 * (2 * (DK) * (T) + (T) * (TC) + ((PPROD) ? (T) * (T) : 0)))

/* NVIDIA products (tile_nv_mma.clh): operand tiles are bf16/fp16 rows of HD + 8 elements (the
 * padding keeps ldmatrix free of bank conflicts). NSTAGE slots of NB staged B operands, the KEEP
 * resident A operands, and a T x (T + 8) tile for P^T A (dQ). The emulation used to test this path
 * on other devices adds its exchange buffer (EMU). */
#define ASP_NV_ROW(HD) ((HD) + 8)
#define ASP_NV_OPERAND_BYTES(T, HD) (2 * (T)*ASP_NV_ROW(HD))
#define ASP_NV_PTILE_BYTES(T) (2 * (T) * ((T) + 8))
#define ASP_NV_EMU_BYTES(WG) (32 * (WG))
#define ASP_NV_PRODUCT_BYTES(T, HD, NSTAGE, NB, KEEP, PPROD, EMU, WG)                 \
  ((NSTAGE) * (NB)*ASP_NV_OPERAND_BYTES(T, HD) + (KEEP)*ASP_NV_OPERAND_BYTES(T, HD) + \
   ((PPROD) == 2 ? ASP_NV_PTILE_BYTES(T) : 0) + ((EMU) ? ASP_NV_EMU_BYTES(WG) : 0))

/* Pass-specific local memory on top of the products (both implementations), in bytes. */
/* Threshold pass: histogram window (3 x T x (BINS+1) uints), candidates (T x KMAX floats); per row
 * the candidate count, window top, bad flag, max, histogram anchor, segment bound, 8 sweep sums
 * and the row solver (at most 64 bytes, checked at compile time); block flags; the refinement's
 * visit masks (ASP_TAU_VISIT_WORDS words each: the tiles of one chunk), the work-group's and one
 * per row segment (at most ASP_TAU_MAX_SEGS; used where a segment skips tiles on its own). */
#define ASP_TAU_VISIT_WORDS 2
#define ASP_TAU_MAX_SEGS 8
#define ASP_TAU_HIST_BYTES(ROWS, BINS) (4 * 3 * (ROWS) * ((BINS) + 1))
#define ASP_TAU_PASS_BYTES(T, BINS, KMAX)                                             \
  (ASP_TAU_HIST_BYTES(T, BINS) + 4 * (T) * (KMAX) + (T) * (6 * 4 + 8 * 4 + 64) + 64 + \
   4 * ASP_TAU_VISIT_WORDS * (1 + ASP_TAU_MAX_SEGS))
/* The fused output pass (attn_fused.clh) on top of the output pass's products: per row KMAX
 * candidates (score and key), their count, ASP_NSUM sweep sums and the row solver (64 bytes); per
 * segment the lowest lower bound; the visit masks as in the threshold pass; flags. */
#define ASP_FUSE_PASS_BYTES(T, KMAX)                     \
  (8 * (T) * (KMAX) + (T) * (4 + 4 * 8 + 64) + 4 * (T) + \
   4 * ASP_TAU_VISIT_WORDS * (1 + ASP_TAU_MAX_SEGS) + 64)
/* The dense sweep's own kernel (attn_tau_dense, TQ rows per work-group): the histograms only. */
#define ASP_TAU_DENSE_PASS_BYTES(TQ, BINS) ASP_TAU_HIST_BYTES(TQ, BINS)
/* What attn_tau_dense leaves per row in the workspace for attn_tau: max, histogram anchor, window
 * top (int bits), non-finite flag; then the histogram (3 x (BINS+1) uints). */
#define ASP_DENSE_ROW_WORDS 4
#define ASP_DENSE_HIST_WORDS(BINS) (3 * ((BINS) + 1))

/* What the backward passes need of a query row, computed once per row by the backward's first
 * kernel (attn_bwd_pre, softmax_flash_bwd_pre) into the workspace: [rows][ASP_QROW_WORDS] floats,
 * the row max m and t = tau - m (softmax: 0 and the log-sum-exp), 1/l, l^(alpha-2) (softmax: 0)
 * and delta. Two 16-byte loads per row. */
#define ASP_QROW_M 0
#define ASP_QROW_T 1
#define ASP_QROW_LINV 2
#define ASP_QROW_LPOW 3
#define ASP_QROW_DELTA 4
#define ASP_QROW_WORDS 8

/* Key-block backward pass: the visited query rows' constants in local memory (a float4 of m, t,
 * 1/l, l^(alpha-2) and a float2 of delta and the visible keys' bits per row). */
#define ASP_QROW_BYTES(T) (6 * 4 * (T))

/* Split-KV decode (attn_decode.cl): query rows per block. The scores, histograms and P V of up to
 * this many rows of a kv head's group share each load of a key or value row. */
#define ASP_DEC_RB 8
/* decode_scores: work-items (lanes) own SPW consecutive 16-byte slices of key rows (S = D * ESIZE /
 * 16 per row; D: the padded head dim, ESIZE: bytes per element; L = S / SPW lanes per row),
 * SWG / L keys per round, a tile of up to 32 keys in at most 8 rounds. Local: the tile's partial
 * dots ([RB][keys][L + 1] floats), the row block's histogram windows (3 x W words per row) and
 * four words per row (max key, count, bad flag, anchor). */
#define ASP_DEC_KEYS_PER_ROUND(SWG, L) ((SWG) / (L))
#define ASP_DEC_ROUNDS(KL) ((KL) >= 32 ? 1 : (32 / (KL) > 8 ? 8 : 32 / (KL)))
#define ASP_DEC_TILE_KEYS(SWG, L) \
  (ASP_DEC_KEYS_PER_ROUND(SWG, L) * ASP_DEC_ROUNDS(ASP_DEC_KEYS_PER_ROUND(SWG, L)))
#define ASP_DEC_SCORES_BYTES(SWG, D, ESIZE, W, SPW)                      \
  (4 * ASP_DEC_RB * ASP_DEC_TILE_KEYS(SWG, (D) * (ESIZE) / 16 / (SPW)) * \
       ((D) * (ESIZE) / 16 / (SPW) + 1) +                                \
   4 * ASP_DEC_RB * 3 * (W) + 16 * ASP_DEC_RB)
/* decode_scores on tensor cores (decode_scores_nv.clh): the row block's histogram windows and four
 * words per row; emulated (EMU 1), also the exchange buffer of 8 words per work-item. */
#define ASP_DEC_SCORES_NV_BYTES(SWG, W, EMU) \
  (4 * ASP_DEC_RB * 3 * (W) + 16 * ASP_DEC_RB + ((EMU) ? 32 * (SWG) : 0))
/* decode_pv: a chunk's weights ([WG][RB] floats), its key flags and two "any" flags, and the
 * reduction of the row block's sums of weights ([RB][WG] floats). */
#define ASP_DEC_PV_BYTES(WG) (4 * (2 * (WG)*ASP_DEC_RB + (WG) + 2))
/* decode_finish: keys a row lists (those whose score reaches its bracket) before it sweeps its
 * whole stored row instead. */
#define ASP_DEC_LIST 512
/* decode_finish, WG work-items: the merged histogram window (3 x W words), the sweep reduction (8
 * sums per work-item, reused for the output's), KMAX exact-finish candidates, the key list twice
 * (unordered and by key: score and key index each), six int scalars and the solver state (11
 * words); two more scalars where the work-group searches the bracket (within the reserve). */
#define ASP_DEC_FIN_BYTES(WG, W, KMAX) \
  (4 * 3 * (W) + 4 * 8 * (WG) + 4 * (KMAX) + 16 * ASP_DEC_LIST + 4 * 6 + 4 * 11)

#endif /* ASP_ABI_H */
