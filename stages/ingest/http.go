package ingest

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"careflow/connectors/mllp"
)

// ContentTypeER7 is the media type of an HL7 v2 message in its pipe-and-hat
// encoding, used for HTTP request and reply bodies.
const ContentTypeER7 = "x-application/hl7-v2+er7"

// HTTPHandler returns the handler of POST /hl7/{interface}, to mount on the
// HTTP port. The body is one HL7 message; the reply body is its ACK. The
// status mirrors the ACK so that HTTP senders that ignore bodies still do
// the right thing:
//
//	200 AA/CA: stored
//	400 AR/CR: unparseable, dead-lettered; resending the same bytes will not help
//	413 AR/CR: over the interface's size limit, dead-lettered
//	503 AR/CR: not stored (Kafka write failed); resend
//	404 unknown interface, 405 not POST
func (s *Stage) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hl7/{interface}", s.serveHTTP)
	return mux
}

func (s *Stage) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	iface := r.PathValue("interface")
	limit, ok := s.limits[iface]
	if !ok {
		http.Error(w, "unknown interface", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	var mbe *http.MaxBytesError
	var (
		ack    []byte
		result string
	)
	switch {
	case errors.As(err, &mbe):
		ack, result = s.rejectTooLarge(r.Context(), iface, TransportHTTP, body[:min(len(body), mllp.PrefixSize)], limit, start)
	case err != nil:
		// The client went away or sent a broken body: nothing to answer.
		s.log.Warn("ingest HTTP body read", "interface", iface, "remote", r.RemoteAddr, "err", err)
		http.Error(w, "body not read", http.StatusBadRequest)
		return
	default:
		ack, result = s.accept(r.Context(), iface, TransportHTTP, body, start)
	}
	status := http.StatusOK
	switch {
	case mbe != nil:
		status = http.StatusRequestEntityTooLarge
	case result == resultRejected:
		status = http.StatusBadRequest
	case result == resultError:
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", ContentTypeER7)
	w.Header().Set("Content-Length", strconv.Itoa(len(ack)))
	w.WriteHeader(status)
	_, _ = w.Write(ack)
}
