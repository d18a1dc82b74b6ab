// openai_audio.mjs: the official openai client (npm, pinned in
// package-lock.json) uploads audio to a running mediad many times in a row,
// as a user's program would: audio.transcriptions.create /
// audio.translations.create with toFile. Prints one JSON line:
//   {"ok":N,"n":N,"errors":{"<status> <message>":count},"texts":{"<text>":count}}
// Usage: node openai_audio.mjs <port> <n> <transcriptions|translations> [wav path]
import fs from 'node:fs';
import OpenAI, { toFile } from 'openai';
import { makeWav } from './wav.mjs';

const [port, n, route, wavPath] = process.argv.slice(2);
const client = new OpenAI({ apiKey: process.env.MEDIAD_API_KEY || 'test-key',
                            baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
// model names and clip lengths vary so the client cuts its body differently
const models = ['m', 'whisper-1', 'mediad'];
const seconds = [0.25, 0.5, 1, 2];
const clips = wavPath ? [fs.readFileSync(wavPath)] : seconds.map(makeWav);
const out = { ok: 0, n: Number(n), errors: {}, texts: {} };
for (let i = 0; i < out.n; i++) {
  try {
    const r = await client.audio[route].create({ model: models[i % models.length],
                                                 file: await toFile(clips[Math.floor(i / models.length) % clips.length], 'clip.wav') });
    out.ok++;
    out.texts[r.text] = (out.texts[r.text] || 0) + 1;
  } catch (e) {
    const k = `${e.status} ${e.message}`;
    out.errors[k] = (out.errors[k] || 0) + 1;
  }
}
console.log(JSON.stringify(out));
