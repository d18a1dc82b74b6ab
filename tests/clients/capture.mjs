// capture.mjs: record the exact bytes the official openai client sends for an
// audio upload, as a test fixture (tests/fixtures/). Run once by hand:
//   cd tests/clients && node capture.mjs transcriptions > ../fixtures/openai-7.60.0-transcription.http
// (the call of issue 12: model "m", a WAV given with toFile)
// A loopback TCP listener answers every request with a small JSON 200 and
// keeps the raw request (request line, headers, body) it received.
import net from 'node:net';
import OpenAI, { toFile } from 'openai';
import { makeWav } from './wav.mjs';

const route = process.argv[2] || 'transcriptions';
let raw = Buffer.alloc(0);
const srv = net.createServer(sock => {
  sock.on('data', d => {
    raw = Buffer.concat([raw, d]);
    const head = raw.indexOf('\r\n\r\n');
    if (head < 0) return;
    const m = /content-length: *(\d+)/i.exec(raw.subarray(0, head).toString('latin1'));
    if (m && raw.length >= head + 4 + Number(m[1]))
      sock.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n' +
               'content-length: 11\r\nconnection: close\r\n\r\n{"text":""}');
  });
});
srv.listen(0, '127.0.0.1', async () => {
  const c = new OpenAI({ apiKey: 'test-key', baseURL: `http://127.0.0.1:${srv.address().port}/v1`,
                         maxRetries: 0 });
  await c.audio[route].create({ model: 'm', file: await toFile(makeWav(0.5), 'clip.wav') });
  process.stdout.write(raw);
  srv.close();
});
