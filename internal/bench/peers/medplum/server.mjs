// MLLP peer for `make bench-peers`: an Hl7Server from the npm package
// @medplum/hl7 answering every message with the library's own ACK (AA),
// no persistence. Usage: node server.mjs PORT
import { Hl7Server } from '@medplum/hl7';

const port = Number(process.argv[2]);
const server = new Hl7Server((connection) => {
  connection.addEventListener('message', ({ message }) => {
    connection.send(message.buildAck());
  });
});
await server.start(port);
