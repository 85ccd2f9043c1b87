// Child process for the kill-mid-export test: starts a real dense export of the model in argv[2] to
// argv[3], writes the weights into the temporary folder, says so on stdout, then waits (as a long export
// would) until the test kills it.

import { writeFolderAtomically } from '../atomic-folder'
import { writeDenseSafetensors } from '../dense-safetensors'
import { loadModel } from '../../model/loaded-model'
import { withReplacements } from '../../model/model-view'

const [, , modelPath, dest] = process.argv
const view = withReplacements(await loadModel(modelPath))
await writeFolderAtomically(dest, async (dir) => {
  await writeDenseSafetensors(view, dir)
  process.stdout.write(`written ${dir}\n`)
  // A pending promise alone does not keep Node running: the timer does, until the test kills us.
  setInterval(() => {}, 1 << 30)
  await new Promise(() => {})
})
