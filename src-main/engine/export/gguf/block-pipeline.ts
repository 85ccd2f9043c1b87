// The export's data section as one ordered stream of blocks (a block of a tensor's rows, or a whole small
// tensor), encoded ahead of the writer: while block k is written, the next `depth` blocks are read,
// decoded, quantized and hashed on the workers (each job returns its block's CRC-32 with its bytes, so
// onBlock only joins CRCs). One stream runs across tensor boundaries, so the workers do not wait at each
// of the model's ~200 tensors. Memory stays flat: at most `depth` blocks are in flight besides the one
// being written, each in memory its job holds (kernel memory, given back once the block is written), so
// the model's size never shows in the peak.

import { WhittleError } from '../../errors'

/** A block's encoded bytes and their CRC-32 (computed where the bytes were produced). */
export interface EncodedBlock {
  bytes: Uint8Array
  crc: number
  /**
   * For bytes in memory the job holds (a view of kernel memory, so that they are not copied once more
   * before the writer copies them): gives that memory back, called once the consumer is done with them.
   * Without it the bytes are an array of their own.
   */
  release?: () => void
}

/** One block to encode. */
export interface BlockJob {
  /** Bytes the block encodes to. */
  bytes: number
  /** Encodes the block and returns its bytes with their CRC-32. */
  run(): Promise<EncodedBlock>
}

export interface BlockPipelineOptions {
  /** Blocks encoded ahead of the one being written (at least 1). */
  depth: number
  /** Called with each block, in order, as soon as it and every block before it are encoded (e.g. to hash). */
  onBlock?: (block: EncodedBlock, index: number) => void
}

interface Running {
  /** The block, once it and every block before it are encoded and passed to onBlock. */
  done: Promise<Uint8Array>
  /** The block's own encoding, settled only once its job no longer uses kernel memory but the block's. */
  encoded: Promise<EncodedBlock>
  /** The encoded block once `encoded` has fulfilled (for its release). */
  block: EncodedBlock | null
  bytes: number
}

export class BlockPipeline {
  private readonly jobs: readonly BlockJob[]
  private readonly depth: number
  private readonly onBlock: (block: EncodedBlock, index: number) => void
  private readonly running: Running[] = []
  /** The block handed out last: its bytes are in the consumer's hands until the next call to next(). */
  private handedOut: Running | null = null
  private started = 0
  private handed = 0
  /** Resolves once the block before the next one to start has been passed to onBlock. */
  private ordered: Promise<unknown> = Promise.resolve()
  private inFlight = 0
  /** Largest number of block bytes held at once (in flight or handed out): the pipeline's memory bound. */
  peakBytes = 0

  constructor(jobs: readonly BlockJob[], options: BlockPipelineOptions) {
    this.jobs = jobs
    this.depth = Math.max(1, Math.floor(options.depth))
    this.onBlock = options.onBlock ?? (() => {})
  }

  get length(): number {
    return this.jobs.length
  }

  /**
   * The next block, in order. The block returned before is released: its memory may be reused from now
   * on, so a consumer must be done with a block (written, or copied) before it asks for the next one.
   */
  async next(): Promise<Uint8Array> {
    if (this.handed >= this.jobs.length)
      throw new WhittleError('validation', null, 'block pipeline: every block was already handed out')
    this.release(this.handedOut)
    this.handedOut = null
    this.fill()
    const block = this.running.shift()!
    this.handed++
    this.handedOut = block
    this.fill()
    return block.done
  }

  /** Waits for every block started (so none still uses kernel memory), then releases them; errors are ignored. */
  async close(): Promise<void> {
    const started = this.handedOut ? [this.handedOut, ...this.running] : [...this.running]
    await Promise.allSettled(started.map((r) => r.encoded))
    this.running.length = 0
    this.handedOut = null
    for (const r of started) this.release(r)
  }

  private release(block: Running | null): void {
    if (!block) return
    this.inFlight -= block.bytes
    block.block?.release?.()
    block.block = null
  }

  private fill(): void {
    while (this.started < this.jobs.length && this.started < this.handed + this.depth) {
      const index = this.started++
      const job = this.jobs[index]
      this.inFlight += job.bytes
      this.peakBytes = Math.max(this.peakBytes, this.inFlight)
      const encoded = job.run()
      // Blocks are encoded concurrently but reach onBlock strictly in order.
      const done = Promise.all([encoded, this.ordered]).then(([block]) => {
        if (block.bytes.byteLength !== job.bytes)
          throw new WhittleError(
            'format',
            null,
            `block ${index} encoded to ${block.bytes.byteLength} bytes, not ${job.bytes}`,
          )
        this.onBlock(block, index)
        return block.bytes
      })
      // A failed block fails every block after it (they are never handed out past it).
      this.ordered = done
      done.catch(() => {})
      const running: Running = { done, encoded, block: null, bytes: job.bytes }
      // Kept for its release; set before close(), which waits on `encoded` after this, reads it.
      encoded.then(
        (block) => {
          running.block = block
        },
        () => {},
      )
      this.running.push(running)
    }
  }
}
