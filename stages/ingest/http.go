package ingest

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/stages/audit"
)

// ContentTypeER7 is the media type of an HL7 v2 message in its pipe-and-hat
// encoding, used for HTTP request and reply bodies.
const ContentTypeER7 = "x-application/hl7-v2+er7"

// HTTPHandler returns the handler of POST /hl7/{interface} and of the FHIR
// interfaces under /fhir/{interface}/ (fhir.go), to mount on the HTTP
// port. The body is one HL7 message; the reply body is its ACK. The
// status mirrors the ACK so that HTTP senders that ignore bodies still do
// the right thing:
//
//	200 AA/CA: stored
//	400 AR/CR: unparseable, dead-lettered; resending the same bytes will not help
//	401 AR: no credential, or one the interface does not know; nothing read or stored
//	403 AR: a credential, address or sender the interface does not allow, or an
//	        interface that is not written over HTTP; nothing stored
//	413 AR/CR: over the interface's size limit, dead-lettered
//	503 AR/CR: not stored (Kafka write failed); resend
//	404 unknown interface, 405 not POST
func (s *Stage) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hl7/{interface}", s.serveHTTP)
	s.fhirRoutes(mux)
	return mux
}

func (s *Stage) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	in, ok := s.ifaces[r.PathValue("interface")]
	if !ok {
		http.Error(w, "unknown interface", http.StatusNotFound)
		return
	}
	peer := peerOf(r.RemoteAddr, r.TLS)
	rc := receipt{in: in, transport: avro.TransportHTTP, writer: peer, start: start}
	// Who it is comes before reading a byte of what they sent.
	ref := in.Writers.checkAddress(in.Name, peer.Address)
	if ref == nil && !in.httpWritable() {
		ref = &refusal{reason: "interface " + in.Name + " is not written over HTTP", status: http.StatusForbidden}
	}
	if ref == nil {
		rc.writer, ref = in.Writers.authenticate(r, in.Name, peer)
	}
	if ref != nil {
		if ref.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="careflow", error="invalid_token"`)
		} else if rc.writer.Kind == audit.AgentJWT {
			w.Header().Set("WWW-Authenticate", `Bearer realm="careflow", error="insufficient_scope", scope="`+in.Writers.Scope+`"`)
		}
		writeACK(w, ref.status, s.refuse(rc, hl7v2.Header{}, hl7v2.DefaultDelimiters, ref))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(in.MaxMessageSize)))
	var mbe *http.MaxBytesError
	var (
		ack    []byte
		result string
	)
	switch {
	case errors.As(err, &mbe):
		rc.payload = body[:min(len(body), mllp.PrefixSize)]
		ack, result = s.rejectTooLarge(r.Context(), rc)
	case err != nil:
		// The client went away or sent a broken body: nothing to answer.
		s.log.Warn("ingest HTTP body read", "interface", in.Name, "remote", r.RemoteAddr, "err", err)
		http.Error(w, "body not read", http.StatusBadRequest)
		return
	default:
		rc.payload = body
		ack, result = s.accept(r.Context(), rc)
	}
	status := http.StatusOK
	switch {
	case mbe != nil:
		status = http.StatusRequestEntityTooLarge
	case result == resultRejected:
		status = http.StatusBadRequest
	case result == resultInvalid:
		// Stored, and dead-lettered by validate: the body is the AE
		// naming the rule.
		status = http.StatusUnprocessableEntity
	case result == resultRefused:
		status = http.StatusForbidden
	case result == resultError:
		status = http.StatusServiceUnavailable
	}
	writeACK(w, status, ack)
}

func writeACK(w http.ResponseWriter, status int, ack []byte) {
	w.Header().Set("Content-Type", ContentTypeER7)
	w.Header().Set("Content-Length", strconv.Itoa(len(ack)))
	w.WriteHeader(status)
	_, _ = w.Write(ack)
}
