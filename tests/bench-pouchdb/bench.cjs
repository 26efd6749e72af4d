// CouchDB-style replication on the dossiers exported by the replication benchmark
// (MOTCUA_BENCH_EXPORT=FILE cargo bench -p motcua-sync --features testing --bench replication),
// counting every byte on the loopback sockets (HTTP headers and bodies, both directions):
//   node bench.cjs FILE
// Each dossier is written as five revisions (intake, then four steps), as the node writes five
// changes; PouchDB replicates the latest revision with its revision history.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const PouchDB = require('pouchdb-core')
  .plugin(require('pouchdb-adapter-memory'))
  .plugin(require('pouchdb-adapter-http'))
  .plugin(require('pouchdb-replication'))
  .plugin(require('pouchdb-mapreduce'));

const DIFF_DOCS = 200; // 200 dossiers of 5 changes = the 1,000 differing changes of the Rust benchmark

async function main() {
  const [header, ...lines] = fs.readFileSync(process.argv[2], 'utf8').trim().split('\n');
  const raw = JSON.parse(header).raw_change_and_signature_bytes;
  const dossiers = lines.map((l) => JSON.parse(l));
  const Server = PouchDB.defaults({ adapter: 'memory' });
  const app = require('express')();
  app.use('/', require('express-pouchdb')(Server, { mode: 'minimumForPouchDB', inMemoryConfig: true }));
  let closed = 0;
  const live = new Set();
  const server = http.createServer(app);
  server.on('connection', (s) => {
    live.add(s);
    s.on('close', () => { closed += s.bytesRead + s.bytesWritten; live.delete(s); });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  const wire = () => closed + [...live].reduce((n, s) => n + s.bytesRead + s.bytesWritten, 0);

  const source = new Server('source');
  let t = Date.now();
  for (const d of dossiers) {
    let doc = { _id: d._id, header: d.header, events: [d.events[0]] };
    let res = await source.put(doc);
    for (const e of d.events.slice(1)) {
      doc = { ...doc, _rev: res.rev, events: [...doc.events, e] };
      res = await source.put(doc);
    }
  }
  console.log(`source written: ${dossiers.length} dossiers, ${dossiers.length * 5} revisions (${((Date.now() - t) / 1000).toFixed(1)} s)`);

  const target = new PouchDB('target', { adapter: 'memory' });
  let before = wire();
  t = Date.now();
  await target.replicate.from(`${url}/source`);
  const catchUp = wire() - before;
  console.log(`pouchdb  catch-up: ${catchUp} bytes on the wire, ratio ${(catchUp / raw).toFixed(3)} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  before = wire();
  await target.replicate.from(`${url}/source`);
  console.log(`pouchdb  idle: ${wire() - before} bytes on the wire (saved checkpoint)`);

  // Repair: a target holding all but DIFF_DOCS dossiers, replicating without a checkpoint.
  const partial = new PouchDB('partial', { adapter: 'memory' });
  const ids = dossiers.slice(0, dossiers.length - DIFF_DOCS).map((d) => d._id);
  await partial.replicate.from(`${url}/source`, { doc_ids: ids });
  const missing = dossiers.slice(dossiers.length - DIFF_DOCS);
  const missingBytes = missing.reduce((n, d) => n + Buffer.byteLength(JSON.stringify(d)), 0);
  before = wire();
  t = Date.now();
  await partial.replicate.from(`${url}/source`);
  const repair = wire() - before;
  console.log(`pouchdb  repair: ${repair} bytes on the wire for ${DIFF_DOCS} differing dossiers (${DIFF_DOCS * 5} changes); beyond the ${missingBytes} bytes of those dossiers' JSON: ${((repair - missingBytes) / (DIFF_DOCS * 5)).toFixed(1)} bytes per differing change (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  server.close();
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
