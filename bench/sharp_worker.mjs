// The sharp peer: one (sharp, workload) measurement, `node bench/sharp_worker.mjs < job.json`.
// Same protocol and method as bench/worker.py (see bench/job.py): the runner pins this process
// to one CPU; files are read into memory, one warm-up, timed runs until both the minimum time and
// run count are reached, the median kept; prints one JSON result line on stdout.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, parse } from 'node:path';

const job = JSON.parse(readFileSync(0, 'utf8'));
const wl = job.workload;
const result = {
  peer: job.peer, workload: wl.name, version: '', error: null,
  cpus: [], baseline_rss_kb: null, peak_rss_kb: null, files: [],
};

let sharp;
try {
  sharp = (await import('sharp')).default;
} catch (err) {
  result.error = `sharp not importable (npm install --prefix bench): ${err.message}`;
  console.log(JSON.stringify(result));
  process.exit(0);
}
sharp.concurrency(1); // one libvips worker thread
sharp.cache(false); // no operation cache: every run does the work
result.version = `sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips} (bundled)`;
result.cpus = allowedCpus();

function statusLine(key) {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(`${key}:`));
  return (line ?? `${key}: `).slice(key.length + 1).trim();
}

function statusKb(key) { // VmRSS (now) or VmHWM (peak) of this process's address space, KiB
  return parseInt(statusLine(key), 10);
}

function allowedCpus() { // the affinity the runner set, as /proc reports it ("1" or "0-1,3")
  return statusLine('Cpus_allowed_list').split(',').flatMap((part) => {
    const [lo, hi] = part.split('-').map(Number);
    return Array.from({ length: (hi ?? lo) - lo + 1 }, (_, i) => lo + i);
  });
}

function convert(buf) {
  const img = sharp(buf)
    .autoOrient()
    .resize({ width: wl.width, height: wl.height ?? undefined, fit: 'inside', withoutEnlargement: true });
  if (wl.format === 'jpeg') return img.jpeg({ quality: wl.quality, chromaSubsampling: '4:2:0' }).toBuffer();
  return img.webp({ quality: wl.quality }).toBuffer();
}

const outDir = join(job.out_dir, job.peer, wl.name);
mkdirSync(outDir, { recursive: true });
const inputs = job.files.map((f) => [f, readFileSync(f.path)]);
result.baseline_rss_kb = statusKb('VmRSS');

const t = job.timing;
for (const [spec, buf] of inputs) {
  const row = { name: spec.name, ms: null, runs: 0, bytes: null, output: null, decoded: null, error: null };
  try {
    let out = null;
    for (let i = 0; i < t.warmup; i++) out = await convert(buf);
    const times = [];
    const started = process.hrtime.bigint();
    for (;;) {
      const t0 = process.hrtime.bigint();
      out = await convert(buf);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
      if ((times.length >= t.min_runs && elapsed >= t.min_time_s) || times.length >= t.max_runs) break;
    }
    times.sort((a, b) => a - b);
    const mid = times.length >> 1;
    row.ms = times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
    row.runs = times.length;
    row.bytes = out.length;
    row.output = `${parse(spec.name).name}.${wl.format === 'jpeg' ? 'jpg' : wl.format}`;
    writeFileSync(join(outDir, row.output), out);
  } catch (err) {
    row.error = String(err.message ?? err).slice(0, 500);
  }
  result.files.push(row);
}
result.peak_rss_kb = statusKb('VmHWM'); // not maxRSS: that carries the parent's high-water mark
console.log(JSON.stringify(result));
