// Lane sums finished four at a time. A dot product's four f32 lane sums a = (a0, a1, a2, a3) end as
// (a0 + a1) + (a2 + a3) (matmul.ts, attention.ts). For four such vectors, a 4×4 transpose (eight
// shuffles) and three vector adds give all four results in one vector, each in that order, where
// finishing them one by one takes sixteen lane extracts and twelve scalar adds.

/** (L0 + L1) + (L2 + L3) where L_c holds lane c of a0…a3: four rows' lane sums combined in dot()'s order. */
// @ts-ignore: decorator
@inline export function transposedSums(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const lo01 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), hi01 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7)
  const lo23 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), hi23 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7)
  const l0 = v128.shuffle<f32>(lo01, lo23, 0, 1, 4, 5), l1 = v128.shuffle<f32>(lo01, lo23, 2, 3, 6, 7)
  const l2 = v128.shuffle<f32>(hi01, hi23, 0, 1, 4, 5), l3 = v128.shuffle<f32>(hi01, hi23, 2, 3, 6, 7)
  return f32x4.add(f32x4.add(l0, l1), f32x4.add(l2, l3))
}

