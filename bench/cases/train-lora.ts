// LoRA r 16 on the BF16 base held as halves (bench/lora-training.ts).

import { benchLoraTraining } from '../lora-training'

await benchLoraTraining('dense')
