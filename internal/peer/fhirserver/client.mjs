// An independent FHIR client for careflow's tests, on fhir-kit-client: Go
// tests drive careflow's inbound FHIR API (or the medplum server beside this
// file) through someone else's reading of FHIR's REST API.
//
// Usage: node client.mjs BASE_URL TOKEN OPERATION ARGS...
//   create TYPE FILE | update TYPE ID FILE | transaction FILE
//   read TYPE ID | search TYPE QUERY        (QUERY as in a URL: a=1&b=2)
// TOKEN "-" sends no Authorization header. FILE "-" is standard input.
// Prints the response's JSON on stdout and "status NNN" on stderr. Exit
// code 0 for 2xx, 1 for 4xx/5xx (the OperationOutcome is the JSON
// printed), 2 for a usage error or no HTTP answer at all.
import { readFileSync } from 'node:fs';
import { Client, RESPONSE_KEY } from 'fhir-kit-client';

const usage = 'usage: node client.mjs BASE_URL TOKEN (create TYPE FILE | update TYPE ID FILE | transaction FILE | read TYPE ID | search TYPE QUERY)';
const [baseUrl, token, op, ...args] = process.argv.slice(2);
const arity = { create: 2, update: 3, transaction: 1, read: 2, search: 2 };
if (!baseUrl || !token || !(op in arity) || args.length !== arity[op]) {
  console.error(usage);
  process.exit(2);
}

const client = new Client({ baseUrl, ...(token === '-' ? {} : { bearerToken: token }) });
const body = (file) => JSON.parse(readFileSync(file === '-' ? 0 : file, 'utf8'));

// searchParams as fhir-kit-client takes them: a repeated key is an array.
function searchParams(query) {
  const params = {};
  for (const [k, v] of new URLSearchParams(query)) {
    params[k] = k in params ? [].concat(params[k], v) : v;
  }
  return params;
}

const calls = {
  create: ([resourceType, file]) => client.create({ resourceType, body: body(file) }),
  update: ([resourceType, id, file]) => client.update({ resourceType, id, body: body(file) }),
  transaction: ([file]) => client.transaction({ body: body(file) }),
  read: ([resourceType, id]) => client.read({ resourceType, id }),
  search: ([resourceType, query]) => client.search({ resourceType, searchParams: searchParams(query) }),
};

try {
  const result = await calls[op](args);
  console.log(JSON.stringify(result));
  console.error(`status ${result[RESPONSE_KEY].status}`);
} catch (err) {
  // fhir-kit-client throws for a non-2xx answer with the status and the
  // parsed body; anything else (refused connection, bad file) has no status.
  if (err.response?.status) {
    const data = err.response.data;
    console.log(typeof data === 'string' ? data : JSON.stringify(data));
    console.error(`status ${err.response.status}`);
    process.exit(1);
  }
  console.error(`${op}: ${err.cause?.message ?? err.message}`);
  process.exit(2);
}
