// llama.cpp's asymmetric scale search (make_qkx2_quants, and make_qkx3_quants, which is the same search
// with other constants) for eight groups at once: two quads of four lanes each, run side by side.
//
// Why eight: every sum of the fit is one chain of dependent f32 adds, element by element, as the scalar
// fit accumulates it, so a quad alone waits on add latency (about four cycles a link, with little else to
// issue; the error pass especially). Two independent quads in the same loop fill those cycles: the same
// operations per lane, in the same order, so the bits are those of the scalar fits (twins: kernels/
// reference/ggml-quantize.ts fitAsymmetric, ggml-quantize-kquants.ts fitQ2, ggml-quantize-imatrix.ts
// fitAsym). Each lane is one group, as in ./ggml-quantize-lanes (its header explains the lane rules and the
// fast rounding path).
//
// Layout: every per-element region (xT, wT, levels, work) holds quad A's n vectors (lanes: groups 0–3)
// then quad B's n vectors (groups 4–7), 2·n·16 bytes. The branches that pick a loop (fast or checked
// rounding, clamp or not, skip a trial nobody can win) are decided for both quads together; each choice
// gives every lane the same bits, so deciding jointly changes only which equivalent loop runs.

import { clampI, fastBound, finiteMask, laneAt, nearestInt4, roundFast, runtimeMagic, storeLevels } from './ggml-quantize-lanes'

/**
 * make_qkx2_quants(n, nmax, x, w, L, …, rmin, rdelta, nstep, mad) for groups 0…7 (see the header for the
 * layout): levels (u8) of group g to L + g·stride, its the_min to mins[g] and its scale to scales[g]
 * (f32[8] each). `mad` weighs |error| instead of error². `levels` and `work` are 2·n·16 bytes of scratch.
 */
export function fitAsym8(
  n: i32,
  nmax: i32,
  xT: usize,
  wT: usize,
  levels: usize,
  L: usize,
  stride: usize,
  mins: usize,
  scales: usize,
  work: usize,
  rmin: f32,
  rdelta: f32,
  nstep: i32,
  mad: bool,
): void {
  const zero = f32x4.splat(0)
  const half = <usize>n << 4 // quad B's offset in every per-element region
  const xB = xT + half, wB = wT + half, levelsB = levels + half, workB = work + half
  let loA = laneAt(xT, 0), loB = laneAt(xB, 0)
  let hiA = loA, hiB = loB
  let sumWA = laneAt(wT, 0), sumWB = laneAt(wB, 0)
  let sumXA = f32x4.mul(sumWA, loA), sumXB = f32x4.mul(sumWB, loB)
  let finite = v128.and(finiteMask(loA), finiteMask(loB))
  for (let i = 1; i < n; i++) {
    const va = laneAt(xT, i), vb = laneAt(xB, i)
    loA = v128.bitselect(va, loA, f32x4.lt(va, loA))
    loB = v128.bitselect(vb, loB, f32x4.lt(vb, loB))
    hiA = v128.bitselect(va, hiA, f32x4.gt(va, hiA))
    hiB = v128.bitselect(vb, hiB, f32x4.gt(vb, hiB))
    finite = v128.and(finite, v128.and(finiteMask(va), finiteMask(vb)))
    const wa = laneAt(wT, i), wb = laneAt(wB, i)
    sumWA = f32x4.add(sumWA, wa)
    sumWB = f32x4.add(sumWB, wb)
    sumXA = f32x4.add(sumXA, f32x4.mul(wa, va))
    sumXB = f32x4.add(sumXB, f32x4.mul(wb, vb))
  }
  const allFinite = i32x4.all_true(finite)
  const magic = runtimeMagic(mins) // mins is written at the end
  const xloA = loA, xloB = loB // every x lies in [xlo, hi]
  loA = v128.bitselect(zero, loA, f32x4.gt(loA, zero))
  loB = v128.bitselect(zero, loB, f32x4.gt(loB, zero))
  const flatA = f32x4.eq(hiA, loA), flatB = f32x4.eq(hiB, loB)
  const flatMinA = f32x4.neg(loA), flatMinB = f32x4.neg(loB)
  const nmaxF = f32x4.splat(<f32>nmax)
  let iscaleA = f32x4.div(nmaxF, f32x4.sub(hiA, loA)), iscaleB = f32x4.div(nmaxF, f32x4.sub(hiB, loB))
  let scaleA = f32x4.div(f32x4.splat(1), iscaleA), scaleB = f32x4.div(f32x4.splat(1), iscaleB)
  let bestA = zero, bestB = zero
  for (let i = 0; i < n; i++) {
    const va = laneAt(xT, i), vb = laneAt(xB, i)
    const la = f32x4.convert_i32x4_s(clampI(nearestInt4(f32x4.mul(iscaleA, f32x4.sub(va, loA))), 0, nmax))
    const lb = f32x4.convert_i32x4_s(clampI(nearestInt4(f32x4.mul(iscaleB, f32x4.sub(vb, loB))), 0, nmax))
    const da = f32x4.sub(f32x4.add(f32x4.mul(scaleA, la), loA), va)
    const db = f32x4.sub(f32x4.add(f32x4.mul(scaleB, lb), loB), vb)
    bestA = f32x4.add(bestA, errorTerm(laneAt(wT, i), da, mad))
    bestB = f32x4.add(bestB, errorTerm(laneAt(wB, i), db, mad))
  }
  let levelIscaleA = iscaleA, levelIscaleB = iscaleB
  let levelLoA = loA, levelLoB = loB
  let differencesValid = false
  for (let is = 0; is <= nstep; is++) {
    const rangeA = f32x4.sub(hiA, loA), rangeB = f32x4.sub(hiB, loB)
    const numerator = f32x4.splat(rmin + rdelta * <f32>is + <f32>nmax)
    iscaleA = f32x4.div(numerator, rangeA)
    iscaleB = f32x4.div(numerator, rangeB)
    // x − lo lies between xlo − lo and hi − lo, and rounding is monotone: these two products bound every
    // lane's iscale·(x − lo).
    const topA = f32x4.mul(iscaleA, rangeA), bottomA = f32x4.mul(iscaleA, f32x4.sub(xloA, loA))
    const topB = f32x4.mul(iscaleB, rangeB), bottomB = f32x4.mul(iscaleB, f32x4.sub(xloB, loB))
    if (allFinite && fastBound(topA, bottomA, flatA) && fastBound(topB, bottomB, flatB)) {
      // x − lo per element, kept until a win moves some lane's lo.
      if (!differencesValid) {
        for (let i = 0; i < n; i++) {
          v128.store(work + (<usize>i << 4), f32x4.sub(laneAt(xT, i), loA))
          v128.store(workB + (<usize>i << 4), f32x4.sub(laneAt(xB, i), loB))
        }
        differencesValid = true
      }
      // Products in (−0.5, nmax + 0.5) round into [0, nmax]: no clamp (most trials before a win).
      const insideA = v128.and(f32x4.gt(bottomA, f32x4.splat(-0.5)), f32x4.lt(topA, f32x4.splat(<f32>nmax + 0.5)))
      const insideB = v128.and(f32x4.gt(bottomB, f32x4.splat(-0.5)), f32x4.lt(topB, f32x4.splat(<f32>nmax + 0.5)))
      if (i32x4.all_true(v128.or(insideA, flatA)) && i32x4.all_true(v128.or(insideB, flatB))) {
        trialSums(ROUND_FAST, n, nmax, xT, wT, levels, work, iscaleA, iscaleB, loA, loB, magic)
      } else trialSums(ROUND_CLAMPED, n, nmax, xT, wT, levels, work, iscaleA, iscaleB, loA, loB, magic)
    } else trialSums(ROUND_CHECKED, n, nmax, xT, wT, levels, work, iscaleA, iscaleB, loA, loB, magic)
    const sumLA = trialSumLA, sumL2A = trialSumL2A, sumXLA = trialSumXLA
    const sumLB = trialSumLB, sumL2B = trialSumL2B, sumXLB = trialSumXLB
    const DA = f32x4.sub(f32x4.mul(sumWA, sumL2A), f32x4.mul(sumLA, sumLA))
    const DB = f32x4.sub(f32x4.mul(sumWB, sumL2B), f32x4.mul(sumLB, sumLB))
    const positiveA = f32x4.gt(DA, zero), positiveB = f32x4.gt(DB, zero)
    if (!v128.any_true(v128.or(positiveA, positiveB))) continue
    let thisScaleA = f32x4.div(f32x4.sub(f32x4.mul(sumWA, sumXLA), f32x4.mul(sumXA, sumLA)), DA)
    let thisScaleB = f32x4.div(f32x4.sub(f32x4.mul(sumWB, sumXLB), f32x4.mul(sumXB, sumLB)), DB)
    let thisMinA = f32x4.div(f32x4.sub(f32x4.mul(sumL2A, sumXA), f32x4.mul(sumLA, sumXLA)), DA)
    let thisMinB = f32x4.div(f32x4.sub(f32x4.mul(sumL2B, sumXB), f32x4.mul(sumLB, sumXLB)), DB)
    const minAboveA = f32x4.gt(thisMinA, zero), minAboveB = f32x4.gt(thisMinB, zero)
    thisMinA = v128.bitselect(zero, thisMinA, minAboveA)
    thisMinB = v128.bitselect(zero, thisMinB, minAboveB)
    thisScaleA = v128.bitselect(f32x4.div(sumXLA, sumL2A), thisScaleA, minAboveA)
    thisScaleB = v128.bitselect(f32x4.div(sumXLB, sumL2B), thisScaleB, minAboveB)
    let errorA = zero, errorB = zero
    if (mad) {
      for (let i = 0; i < n; i++) {
        const da = f32x4.sub(f32x4.add(f32x4.mul(thisScaleA, laneAt(levels, i)), thisMinA), laneAt(xT, i))
        const db = f32x4.sub(f32x4.add(f32x4.mul(thisScaleB, laneAt(levelsB, i)), thisMinB), laneAt(xB, i))
        errorA = f32x4.add(errorA, f32x4.mul(laneAt(wT, i), f32x4.abs(da)))
        errorB = f32x4.add(errorB, f32x4.mul(laneAt(wB, i), f32x4.abs(db)))
      }
    } else {
      for (let i = 0; i < n; i++) {
        const da = f32x4.sub(f32x4.add(f32x4.mul(thisScaleA, laneAt(levels, i)), thisMinA), laneAt(xT, i))
        const db = f32x4.sub(f32x4.add(f32x4.mul(thisScaleB, laneAt(levelsB, i)), thisMinB), laneAt(xB, i))
        errorA = f32x4.add(errorA, f32x4.mul(laneAt(wT, i), f32x4.mul(da, da)))
        errorB = f32x4.add(errorB, f32x4.mul(laneAt(wB, i), f32x4.mul(db, db)))
      }
    }
    const winA = v128.and(positiveA, f32x4.lt(errorA, bestA)), winB = v128.and(positiveB, f32x4.lt(errorB, bestB))
    if (!v128.any_true(v128.or(winA, winB))) continue
    levelIscaleA = v128.bitselect(iscaleA, levelIscaleA, winA)
    levelIscaleB = v128.bitselect(iscaleB, levelIscaleB, winB)
    levelLoA = v128.bitselect(loA, levelLoA, winA)
    levelLoB = v128.bitselect(loB, levelLoB, winB)
    bestA = v128.bitselect(errorA, bestA, winA)
    bestB = v128.bitselect(errorB, bestB, winB)
    scaleA = v128.bitselect(thisScaleA, scaleA, winA)
    scaleB = v128.bitselect(thisScaleB, scaleB, winB)
    loA = v128.bitselect(thisMinA, loA, winA)
    loB = v128.bitselect(thisMinB, loB, winB)
    differencesValid = false
  }
  for (let i = 0; i < n; i++) {
    v128.store(levels + (<usize>i << 4), clampI(nearestInt4(f32x4.mul(levelIscaleA, f32x4.sub(laneAt(xT, i), levelLoA))), 0, nmax))
    v128.store(levelsB + (<usize>i << 4), clampI(nearestInt4(f32x4.mul(levelIscaleB, f32x4.sub(laneAt(xB, i), levelLoB))), 0, nmax))
  }
  storeLevels(levels, n, 0, flatA, L, stride)
  storeLevels(levelsB, n, 0, flatB, L + 4 * stride, stride)
  v128.store(mins, v128.bitselect(flatMinA, f32x4.neg(loA), flatA))
  v128.store(mins, v128.bitselect(flatMinB, f32x4.neg(loB), flatB), 16)
  v128.store(scales, v128.andnot(scaleA, flatA))
  v128.store(scales, v128.andnot(scaleB, flatB), 16)
}

// How a trial rounds iscale·(x − lo) to a level (each gives the scalar fit's level; ./ggml-quantize-lanes):
const ROUND_FAST = 0 // in the float domain from the stored x − lo, no clamp needed
const ROUND_CLAMPED = 1 // the same, clamped to [0, nmax]
const ROUND_CHECKED = 2 // nearestInt and an integer clamp (NaN, infinities, huge scales)

// trialSums' results: Σ w·l, Σ w·l², Σ w·l·x per lane of quads A and B. Globals are per instance, so per
// worker; one store and load each per trial.
let trialSumLA = f32x4.splat(0), trialSumL2A = f32x4.splat(0), trialSumXLA = f32x4.splat(0)
let trialSumLB = f32x4.splat(0), trialSumL2B = f32x4.splat(0), trialSumXLB = f32x4.splat(0)

/**
 * One trial's levels (to `levels`) and sums (to the trialSum globals), for both quads. `mode` is a
 * constant at every call, so after inlining each call is its own loop with no branch per element.
 */
// @ts-ignore: decorator
@inline function trialSums(
  mode: i32,
  n: i32,
  nmax: i32,
  xT: usize,
  wT: usize,
  levels: usize,
  work: usize,
  iscaleA: v128,
  iscaleB: v128,
  loA: v128,
  loB: v128,
  magic: v128,
): void {
  const zero = f32x4.splat(0), nmaxF = f32x4.splat(<f32>nmax)
  const half = <usize>n << 4
  let sumLA = zero, sumL2A = zero, sumXLA = zero
  let sumLB = zero, sumL2B = zero, sumXLB = zero
  for (let i = 0; i < n; i++) {
    const va = laneAt(xT, i), vb = laneAt(xT + half, i)
    let la: v128, lb: v128
    if (mode == ROUND_CHECKED) {
      la = f32x4.convert_i32x4_s(clampI(nearestInt4(f32x4.mul(iscaleA, f32x4.sub(va, loA))), 0, nmax))
      lb = f32x4.convert_i32x4_s(clampI(nearestInt4(f32x4.mul(iscaleB, f32x4.sub(vb, loB))), 0, nmax))
    } else {
      la = roundFast(f32x4.mul(iscaleA, laneAt(work, i)), magic)
      lb = roundFast(f32x4.mul(iscaleB, laneAt(work + half, i)), magic)
      if (mode == ROUND_CLAMPED) {
        la = f32x4.pmax(zero, f32x4.pmin(nmaxF, la))
        lb = f32x4.pmax(zero, f32x4.pmin(nmaxF, lb))
      }
    }
    v128.store(levels + (<usize>i << 4), la)
    v128.store(levels + half + (<usize>i << 4), lb)
    const wla = f32x4.mul(laneAt(wT, i), la), wlb = f32x4.mul(laneAt(wT + half, i), lb)
    sumLA = f32x4.add(sumLA, wla)
    sumLB = f32x4.add(sumLB, wlb)
    sumL2A = f32x4.add(sumL2A, f32x4.mul(wla, la))
    sumL2B = f32x4.add(sumL2B, f32x4.mul(wlb, lb))
    sumXLA = f32x4.add(sumXLA, f32x4.mul(wla, va))
    sumXLB = f32x4.add(sumXLB, f32x4.mul(wlb, vb))
  }
  trialSumLA = sumLA
  trialSumL2A = sumL2A
  trialSumXLA = sumXLA
  trialSumLB = sumLB
  trialSumL2B = sumL2B
  trialSumXLB = sumXLB
}

/** One element's error in make_qkx2/3_quants' first pass: w·|diff| (use_mad) or w·diff², as the scalar fits compute it. */
// @ts-ignore: decorator
@inline function errorTerm(w: v128, diff: v128, mad: bool): v128 {
  return mad ? f32x4.mul(w, f32x4.abs(diff)) : f32x4.mul(w, f32x4.mul(diff, diff))
}
