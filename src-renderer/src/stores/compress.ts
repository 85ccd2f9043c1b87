// The recipe being built in the Compress tab: presets, step-by-step edits, targets picked by clicking
// tensors, per-tensor overrides, and the engine's verdict on it (validation, then the predicted size).
// Every edit replaces the recipe with a new value (lib/recipe-edit.ts) and schedules one check: the
// engine validates a burst of keystrokes once, after the typing pauses.

import { defineStore } from 'pinia'
import { computed, ref, shallowRef, watch } from 'vue'
import type { CompressionPrediction, RecipeDoc, RecipePreset, TensorInfo } from '@contract/api'
import { getApi } from '../bridge'
import * as edit from '../lib/recipe-edit'
import { messageOf, useErrorStore } from './errors'
import { useMethodsStore } from './methods'
import { useModelStore } from './model'

/** Quiet time after the last edit before the recipe is sent to the engine for checking. */
export const CHECK_DELAY_MS = 300
/** The engine refuses recipes above 1 MB; a larger file is not worth reading. */
export const MAX_RECIPE_FILE_BYTES = 1 << 20

/** What the Load button hands over: a File, or anything with its name, size and text. */
export interface RecipeFile {
  name: string
  size: number
  text(): Promise<string>
}

export const useCompressStore = defineStore('compress', () => {
  const model = useModelStore()
  const errors = useErrorStore()
  const catalogue = useMethodsStore()

  const presets = shallowRef<RecipePreset[]>([])
  const presetsLoaded = ref(false)
  /** The preset the recipe came from ('' = built by hand or loaded from a file). */
  const presetId = ref('')
  const recipe = shallowRef<RecipeDoc>(edit.emptyRecipe())
  /** The step that clicks in the tree and the heatmap add targets to. */
  const currentStep = ref(0)
  const selectMode = ref(false)

  /** The engine's objection to the recipe (names the step and field), or null when it is valid. */
  const recipeError = ref<string | null>(null)
  /** A recipe file that could not be loaded (the recipe in the editor is unchanged). */
  const loadError = ref<string | null>(null)
  /** From an edit until its check has answered. */
  const checking = ref(false)
  /** The engine's normalised form of the last recipe it accepted. */
  const checked = shallowRef<RecipeDoc | null>(null)
  const prediction = shallowRef<CompressionPrediction | null>(null)
  const predictionError = ref<string | null>(null)
  const predicting = ref(false)

  let timer: ReturnType<typeof setTimeout> | null = null
  let checkTicket = 0
  let predictTicket = 0

  const preset = computed(() => presets.value.find((p) => p.id === presetId.value) ?? null)
  const presetModified = computed(() => !!preset.value && !edit.sameRecipe(preset.value.recipe, recipe.value))
  const methods = computed(() =>
    edit.methodChoices(catalogue.catalogue, recipe.value, ...presets.value.map((p) => p.recipe)),
  )
  const step = computed(() => recipe.value.steps[currentStep.value])
  /** Tensors the current step picks by name (framed in the heatmap, ticked in the tree). */
  const picked = computed(() => edit.pickedNames(step.value, model.tensors))
  /** Tensors each step will compress, by the engine's rule (or the pattern error). */
  const stepMatches = computed(() => recipe.value.steps.map((s) => edit.stepTargets(s, model.tensors)))
  /** The current step's targets, for marking what a click would change. */
  const targeted = computed<Set<string>>(() => {
    const m = stepMatches.value[currentStep.value]
    return new Set(m && 'tensors' in m ? m.tensors.map((t) => t.name) : [])
  })
  /** Text typed into a step's params JSON that does not parse, by step; the recipe cannot run meanwhile. */
  const draftErrors = ref<Record<number, string>>({})
  const draftError = computed(() => {
    const first = Object.entries(draftErrors.value).sort(([a], [b]) => Number(a) - Number(b))[0]
    return first ? `step ${Number(first[0]) + 1}: params ${first[1]}` : null
  })
  const shownError = computed(() => loadError.value ?? draftError.value ?? recipeError.value)

  function setDraftError(index: number, message: string | null): void {
    const next = { ...draftErrors.value }
    if (message === null) delete next[index]
    else next[index] = message
    draftErrors.value = next
  }

  function scheduleCheck(): void {
    if (timer) clearTimeout(timer)
    checking.value = true
    timer = setTimeout(() => {
      timer = null
      void validate()
    }, CHECK_DELAY_MS)
  }

  /** Replaces the recipe with an edited one and has it checked once the edits pause. */
  function apply(next: RecipeDoc): void {
    if (next === recipe.value) return
    recipe.value = next
    loadError.value = null
    if (currentStep.value >= next.steps.length) currentStep.value = next.steps.length - 1
    scheduleCheck()
  }

  /** The newest check: an overtaken one answers with its verdict (see validate). */
  let latestCheck: Promise<RecipeDoc | null> = Promise.resolve(null)

  /**
   * Checks the recipe now (cancelling a scheduled check), then refreshes the prediction. Resolves with the
   * normalised recipe, or null when it is invalid. A check overtaken by a newer one (an edit, or a tab's
   * first-visit check started meanwhile) is no verdict: it resolves with the newest check's.
   */
  function validate(): Promise<RecipeDoc | null> {
    if (timer) {
      clearTimeout(timer)
      timer = null
    }
    latestCheck = check(++checkTicket)
    return latestCheck
  }

  async function check(mine: number): Promise<RecipeDoc | null> {
    checking.value = true
    let normal: RecipeDoc
    try {
      normal = await getApi().checkRecipe({ recipe: edit.plainCopy(recipe.value) })
    } catch (e) {
      if (mine !== checkTicket) return latestCheck
      checking.value = false
      recipeError.value = messageOf(e)
      checked.value = null
      prediction.value = null
      return null
    }
    if (mine !== checkTicket) return latestCheck
    checking.value = false
    recipeError.value = null
    checked.value = normal
    await predict()
    return normal
  }

  async function predict(): Promise<void> {
    const summary = model.summary
    const mine = ++predictTicket
    if (!summary || recipeError.value) {
      prediction.value = null
      predicting.value = false
      return
    }
    predicting.value = true
    try {
      const p = await getApi().predictCompression({ modelId: summary.id, recipe: edit.plainCopy(recipe.value) })
      if (mine !== predictTicket) return
      prediction.value = p
      predictionError.value = null
    } catch (e) {
      if (mine !== predictTicket) return
      prediction.value = null
      predictionError.value = messageOf(e)
    } finally {
      if (mine === predictTicket) predicting.value = false
    }
  }

  async function loadPresets(): Promise<void> {
    if (presetsLoaded.value) return
    try {
      presets.value = await getApi().recipePresets()
      presetsLoaded.value = true
    } catch (e) {
      errors.report(e)
    }
  }

  function choosePreset(id: string): void {
    const p = presets.value.find((x) => x.id === id)
    presetId.value = p ? p.id : ''
    if (!p) return
    currentStep.value = 0
    apply(edit.plainCopy(p.recipe))
  }

  /** Reads a recipe file (YAML or JSON) through the engine's validator; a bad file leaves the editor as it was. */
  async function loadRecipeFile(file: RecipeFile): Promise<boolean> {
    if (file.size > MAX_RECIPE_FILE_BYTES) {
      loadError.value = `${file.name}: recipe is larger than 1 MB`
      errors.report(loadError.value)
      return false
    }
    try {
      const normal = await getApi().checkRecipe({ text: await file.text() })
      presetId.value = ''
      currentStep.value = 0
      apply(normal)
      return true
    } catch (e) {
      // The engine names text it was handed 'recipe'; here the file has a real name.
      loadError.value = `${file.name}: ${messageOf(e).replace(/^recipe: /, '')}`
      errors.report(loadError.value)
      return false
    }
  }

  /** The recipe as YAML for saving, or null (with the reason shown) when the engine refuses it. */
  async function recipeYaml(): Promise<string | null> {
    try {
      return await getApi().recipeToYaml({ recipe: edit.plainCopy(recipe.value) })
    } catch (e) {
      recipeError.value = messageOf(e)
      errors.report(e)
      return null
    }
  }

  function chooseStep(index: number): void {
    if (index >= 0 && index < recipe.value.steps.length) currentStep.value = index
  }

  function addStep(method = 'rtn'): void {
    apply(edit.addStep(recipe.value, method))
    currentStep.value = recipe.value.steps.length - 1
  }

  function removeStep(index: number): void {
    const next = edit.removeStep(recipe.value, index)
    if (next === recipe.value) return
    const cur = currentStep.value
    currentStep.value = cur > index ? cur - 1 : Math.min(cur, next.steps.length - 1)
    apply(next)
  }

  function moveStep(index: number, delta: number): void {
    const before = recipe.value
    apply(edit.moveStep(before, index, delta))
    if (recipe.value === before) return
    // The current step stays the same step, wherever it went.
    if (currentStep.value === index) currentStep.value = index + delta
    else if (currentStep.value === index + delta) currentStep.value = index
  }

  /**
   * Select mode's click: adds the tensor to the current step's targets, or removes it. Only what
   * the engine can compress is accepted; anything else is explained instead of silently ignored.
   */
  function toggleTarget(name: string): boolean {
    const info: TensorInfo | undefined = model.tensors.find((t) => t.name === name)
    if (info && !edit.isCompressible(info)) {
      errors.report(
        `${name} cannot be a compression target: only 2-D Linear weights inside the decoder blocks are compressed`,
      )
      return false
    }
    apply(edit.toggleTarget(recipe.value, currentStep.value, name))
    return true
  }

  /** First visit to the tab: the presets, and a verdict and prediction for the recipe as it stands. */
  async function init(): Promise<void> {
    await Promise.all([loadPresets(), catalogue.load()])
    if (!checked.value && !recipeError.value && !timer && !checking.value) await validate()
  }

  /** A newly opened model has other tensors and sizes: predict again for it. */
  watch(
    () => model.summary?.id,
    () => {
      // Only once the tab has checked the recipe (the tree and heatmap create this store at start).
      if (checked.value && !checking.value && !recipeError.value) void predict()
    },
  )

  return {
    presets,
    presetsLoaded,
    presetId,
    preset,
    presetModified,
    recipe,
    currentStep,
    step,
    selectMode,
    methods,
    recipeError,
    loadError,
    draftError,
    shownError,
    setDraftError,
    checking,
    checked,
    prediction,
    predictionError,
    predicting,
    picked,
    targeted,
    stepMatches,
    init,
    apply,
    validate,
    predict,
    loadPresets,
    choosePreset,
    loadRecipeFile,
    recipeYaml,
    chooseStep,
    addStep,
    removeStep,
    moveStep,
    toggleTarget,
    setMethod: (i: number, method: string) => apply(edit.setStepMethod(catalogue.catalogue, recipe.value, i, method)),
    setParam: (i: number, key: string, value: unknown) => apply(edit.setStepParam(recipe.value, i, key, value)),
    setExtraParams: (i: number, extra: Record<string, unknown>) =>
      apply(edit.setExtraParams(catalogue.catalogue, recipe.value, i, extra)),
    setTargets: (i: number, which: 'include' | 'exclude', patterns: string[]) =>
      apply(edit.setStepTargets(recipe.value, i, which, patterns)),
    setOverrideBits: (module: string, bits: number | null) => apply(edit.setOverrideBits(recipe.value, module, bits)),
    removeOverride: (module: string) => apply(edit.removeOverride(recipe.value, module)),
    setCalibration: (field: edit.CalibrationField, value: string | number | undefined) =>
      apply(edit.setCalibration(recipe.value, field, value)),
    setKvCache: (setting: string | undefined) => apply(edit.setKvCache(recipe.value, setting)),
  }
})
