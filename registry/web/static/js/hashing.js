// SHA-256 of picked files in a small pool of Web Workers (js/hash-worker.js, hash-wasm):
// several files hash at once on several cores, and the page never waits on a hash.

const POOL_SIZE = Math.max(1, Math.min(4, Math.floor((navigator.hardwareConcurrency || 2) / 2)));

export class HashPool {
  constructor(workerUrl, size = POOL_SIZE) {
    this.workerUrl = workerUrl;
    this.size = size;
    this.idle = [];
    this.workers = [];
    this.waiting = [];
    this.jobs = new Map();
    this.nextId = 1;
  }

  _worker() {
    if (this.idle.length) return this.idle.pop();
    if (this.workers.length >= this.size) return null;
    const worker = new Worker(this.workerUrl);
    worker.onmessage = (event) => this._answer(worker, event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      for (const [id, job] of this.jobs) {
        if (job.worker === worker) {
          this.jobs.delete(id);
          job.reject(new Error(`Could not compute the checksum of ${job.file.name}: ${event.message}`));
        }
      }
    };
    this.workers.push(worker);
    return worker;
  }

  _answer(worker, message) {
    const job = this.jobs.get(message.id);
    if (!job) return;
    if (message.done !== undefined) {
      job.onProgress(message.done);
      return;
    }
    this.jobs.delete(message.id);
    if (message.error) job.reject(new Error(`Could not compute the checksum of ${job.file.name}: ${message.error}`));
    else job.resolve(message.sha256);
    this.idle.push(worker);
    this._pump();
  }

  _pump() {
    while (this.waiting.length) {
      const worker = this._worker();
      if (!worker) return;
      const job = this.waiting.shift();
      job.worker = worker;
      this.jobs.set(job.id, job);
      worker.postMessage({ id: job.id, file: job.file });
    }
  }

  /** The file's SHA-256 (hex); ``onProgress(bytesRead)`` as the worker reads it. */
  hash(file, onProgress = () => {}) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ id: this.nextId++, file, onProgress, resolve, reject });
      this._pump();
    });
  }
}
