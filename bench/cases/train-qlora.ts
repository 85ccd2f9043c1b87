// QLoRA r 16: the BF16 base quantized to NF4 and held packed (bench/lora-training.ts).

import { benchLoraTraining } from '../lora-training'

await benchLoraTraining('nf4')
