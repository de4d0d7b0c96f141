package engine

import (
	"runtime/debug"

	"context"
	"fmt"
	"slices"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/fhir"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/httpx"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/codemap"
	"github.com/careflow-health/careflow/stages/conformance"
	"github.com/careflow-health/careflow/stages/deliver"
	"github.com/careflow-health/careflow/stages/deliver/render"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/ingest"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/stages/normalise"
	"github.com/careflow-health/careflow/stages/orderindex"
	"github.com/careflow-health/careflow/stages/patientindex"
	"github.com/careflow-health/careflow/stages/route"
	"github.com/careflow-health/careflow/stages/validate"
	"github.com/careflow-health/careflow/topics"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
)

// startStages builds every selected stage and starts it in the engine's
// group.
func (e *Engine) startStages(ctx context.Context) error {
	if e.runs(topics.StageIngest) {
		if err := e.startIngest(ctx); err != nil {
			return err
		}
	}
	if e.runs(topics.StageValidate) {
		if err := e.startValidate(ctx); err != nil {
			return err
		}
	}
	if e.runs(topics.StageNormalise) {
		policies := map[string]identity.Policy{}
		for _, in := range e.cfg.Inbound {
			policies[in.Name] = policyOf(e.cfg.TrustFor(in))
		}
		matrix, err := e.cfg.Ownership.Matrix()
		if err != nil {
			return fmt.Errorf("engine: ownership: %w", err)
		}
		var codes []codemap.Binding
		for _, cm := range e.cfg.Codes {
			codes = append(codes, cm.Binding())
		}
		idx := patientindex.New()
		st, err := normalise.New(normalise.Config{Serde: e.serde, Identity: policies, Ownership: matrix, Codes: codes, Index: idx, Metrics: e.metrics,
			FHIRSystems: fhir.NewSystems(e.cfg.FHIR.IdentifierSystems)})
		if err != nil {
			return fmt.Errorf("engine: normalise: %w", err)
		}
		if err := e.runStage(ctx, stages.RunnerConfig{Stage: topics.StageNormalise, Inputs: []string{topics.Valid}, Processor: st,
			State: idx,
			// The index is global (any partition's message may name any
			// patient): every assignment reloads all of it, so a copy sees
			// what the copies before the rebalance wrote.
			OnAssigned: func(ctx context.Context, _ map[string][]int32) {
				e.loadDedup(ctx, topics.Patients, func(ctx context.Context) error {
					return idx.Load(ctx, e.kafkaFor(topics.StageNormalise))
				})
			},
		}); err != nil {
			return err
		}
	}
	if e.runs(topics.StageRoute) {
		routeInputs := []string{topics.Events, topics.Outcomes, topics.DeadLetter(topics.StageDeliver)}
		var routes []route.Route
		for _, r := range e.cfg.Routes {
			routes = append(routes, route.Route{Name: r.Name, Destination: r.Destination, When: r.When, SLA: r.SLA, Expect: expectationOf(r)})
		}
		policies := map[string]route.Policy{}
		for _, in := range e.cfg.Inbound {
			policies[in.Name] = route.Policy{ReplyTo: in.ReplyTo, ReplyTimeout: in.ReplyTimeout,
				CorrelationWait: in.CorrelationWait, HoldUnknown: in.UnknownOrder == config.UnknownOrderHold,
				Resequence: in.OutOfOrder.Hold}
		}
		patients, orders := stages.NewTable(topics.PatientState), stages.NewTable(topics.OrderState)
		st, err := route.New(route.Config{Routes: routes, Serde: e.serde, Metrics: e.metrics, Logger: e.log,
			Patients: patients, Orders: orders, Interfaces: policies})
		if err != nil {
			return fmt.Errorf("engine: route: %w", err)
		}
		if err := e.runStage(ctx, stages.RunnerConfig{
			// Deliver's outcomes and dead letters move orders (sent,
			// accepted, rejected) and acknowledgements: route reads them
			// beside the events, partition p of each on one copy.
			Stage: topics.StageRoute, Inputs: routeInputs, CoPartitioned: true,
			Processor: st, State: stages.TxnStates{patients, orders, st.Timers()},
			OnAssigned: func(ctx context.Context, m map[string][]int32) {
				parts := partitionsOf(m, routeInputs...)
				for _, tb := range []*stages.Table{patients, orders} {
					e.loadDedup(ctx, tb.Topic(), func(ctx context.Context) error {
						return tb.Restore(ctx, e.kafkaFor(topics.StageRoute), parts)
					})
				}
				// Patients the order changelog lost come back from the
				// transitions recorded on careflow.orders.
				e.loadDedup(ctx, topics.Orders, func(ctx context.Context) error {
					return st.RebuildOrders(ctx, e.kafkaFor(topics.StageRoute), parts)
				})
				st.Reindex(parts) // the waits and acknowledgements restored
			},
			OnRevoked: func(_ context.Context, m map[string][]int32) {
				parts := partitionsOf(m, routeInputs...)
				patients.Forget(parts)
				orders.Forget(parts)
				st.ForgetTimers(parts)
			},
		}); err != nil {
			return err
		}
	}
	if e.runs(topics.StageRoute) {
		if err := e.startOrderIndex(ctx); err != nil {
			return err
		}
	}
	if e.runs(topics.StageDeliver) {
		m := deliver.NewMetrics(e.metrics)
		for _, d := range e.cfg.Destinations {
			if len(e.opts.Destinations) > 0 && !slices.Contains(e.opts.Destinations, d.Name) {
				continue
			}
			if err := e.startDeliver(ctx, d, m); err != nil {
				return err
			}
		}
	}
	if e.runs(topics.StageSink) {
		if err := e.startSink(ctx); err != nil {
			return err
		}
	}
	return nil
}

// startOrderIndex runs the order index beside route, in a group of its
// own: it reads route's claims by order number (stages/orderindex).
func (e *Engine) startOrderIndex(ctx context.Context) error {
	idx := stages.NewTable(topics.OrderIndex)
	st, err := orderindex.New(orderindex.Config{Index: idx, Serde: e.serde, Metrics: e.metrics})
	if err != nil {
		return fmt.Errorf("engine: order index: %w", err)
	}
	return e.runStage(ctx, stages.RunnerConfig{
		Stage: topics.StageRoute, Group: "careflow-route-order-index", Inputs: []string{topics.OrderClaims},
		Processor: st, State: idx,
		OnAssigned: func(ctx context.Context, m map[string][]int32) {
			parts := partitionsOf(m, topics.OrderClaims)
			e.loadDedup(ctx, idx.Topic(), func(ctx context.Context) error {
				return idx.Restore(ctx, e.kafkaFor(topics.StageRoute), parts)
			})
		},
		OnRevoked: func(_ context.Context, m map[string][]int32) { idx.Forget(partitionsOf(m, topics.OrderClaims)) },
	})
}

// policyOf is an interface's identifier policy, as identity keeps it.
func policyOf(trust []config.TrustedIdentifier) identity.Policy {
	var p identity.Policy
	for _, t := range trust {
		p.Trust = append(p.Trust, identity.Trusted{Type: t.Type, Authority: t.Authority, Check: t.Check})
	}
	return p
}

// expectationOf is a route's timeliness expectation, as route keeps it.
func expectationOf(r config.Route) route.Expectation {
	var x route.Expectation
	if r.Expect == nil {
		return x
	}
	x.Expect = lifecycle.Expect{AcceptedWithin: r.Expect.AcceptedWithin, ResultedWithin: r.Expect.ResultedWithin}
	for prio, t := range r.Expect.Priority {
		if x.ByPriority == nil {
			x.ByPriority = map[string]lifecycle.Expect{}
		}
		x.ByPriority[prio] = lifecycle.Expect{AcceptedWithin: t.AcceptedWithin, ResultedWithin: t.ResultedWithin}
	}
	return x
}

// kafkaFor is the engine's Kafka options for a client of stage: with
// --kafka-log-level, its log lines carry the stage.
func (e *Engine) kafkaFor(stage string) []kgo.Opt {
	if e.opts.KafkaLogger == nil {
		return e.kopts
	}
	return append(slices.Clone(e.kopts), kgo.WithLogger(kslog.New(e.opts.KafkaLogger.With("stage", stage))))
}

// runStage starts a Runner with the engine's Kafka options and defaults.
func (e *Engine) runStage(ctx context.Context, rc stages.RunnerConfig) error {
	rc.Serde = e.serde
	rc.Kafka = e.kafkaFor(rc.Stage)
	rc.Logger = e.log
	rc.Metrics = e.stageM
	rc.MaxRecords = e.cfg.Kafka.TransactionRecords
	if rc.InstanceID == "" {
		rc.InstanceID = e.opts.InstanceID
	}
	// The embedded broker dies with this process, so no zombie producer
	// can outlive a restart; a fresh transactional id per start avoids
	// kfake's unfinished-transaction recovery (docs/exactly-once.md).
	rc.FreshTransactionalID = e.broker != nil
	r, err := stages.NewRunner(rc)
	if err != nil {
		return fmt.Errorf("engine: %s: %w", rc.Stage, err)
	}
	e.runners = append(e.runners, r)
	e.group.Go(func() error { return r.Run(ctx) })
	return nil
}

func (e *Engine) startIngest(ctx context.Context) error {
	var ifaces []ingest.Interface
	verifiers := map[string]*httpx.JWTVerifier{}
	for _, in := range e.cfg.Inbound {
		w, err := e.writers(ctx, in, verifiers)
		if err != nil {
			return err
		}
		iface := ingest.Interface{
			Name: in.Name, MaxMessageSize: in.MaxMessageSize, HTTP: in.HTTP, Writers: w, Charset: in.Charset,
			Identity: policyOf(e.cfg.TrustFor(in)),
		}
		if in.Ack == config.AckValidated {
			if iface.Rules, err = conformance.New(rulesOf(in)); err != nil {
				return fmt.Errorf("engine: inbound %s: accept: %w", in.Name, err)
			}
		}
		if in.Transport == avro.TransportFHIR {
			iface.FHIR, iface.FHIRResources = true, in.Resources
		}
		if in.Transport == avro.TransportMLLP {
			tc, err := serverTLS(in.TLS)
			if err != nil {
				return fmt.Errorf("engine: inbound %s: %w", in.Name, err)
			}
			iface.Listen, iface.TLSConfig = in.Listen, tc
			if tc != nil && tc.ClientCAs != nil {
				iface.Writers.CertificateCAs = tc.ClientCAs
			}
			iface.ReadTimeout, iface.IdleTimeout = in.ReadTimeout, in.IdleTimeout
			iface.FirstByteTimeout, iface.HandshakeTimeout = in.FirstByteTimeout, in.HandshakeTimeout
			iface.MaxConnections, iface.MaxConnectionsPerPeer = in.MaxConnections, in.MaxConnectionsPerPeer
		}
		ifaces = append(ifaces, iface)
	}
	st, err := ingest.New(ingest.Config{
		Interfaces: ifaces, Client: e.client, Serde: e.serde,
		Logger: e.log, Metrics: e.metrics, Audit: e.audit,
		FHIRSystems: fhir.NewSystems(e.cfg.FHIR.IdentifierSystems), Kafka: e.kafkaFor(topics.StageIngest), Version: version(),
		FHIRTransactionalID: "careflow-ingest-fhir-" + e.opts.InstanceID, FreshTransactionalID: e.broker != nil,
	})
	if err != nil {
		return fmt.Errorf("engine: ingest: %w", err)
	}
	if err := st.LoadFHIR(ctx); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	if err := st.Listen(); err != nil {
		return fmt.Errorf("engine: ingest: %w", err)
	}
	e.group.Go(func() error { return st.Run(ctx) })
	if e.cfg.HTTP.Enabled() {
		tc, err := httpTLS(e.cfg.HTTP.TLS)
		if err != nil {
			return fmt.Errorf("engine: http.tls: %w", err)
		}
		ln, err := listen(e.cfg.HTTP.Listen, tc)
		if err != nil {
			return fmt.Errorf("engine: http ingest listener: %w", err)
		}
		e.httpLn = ln
		e.httpSrv = newHTTPServer(st.HTTPHandler(), e.log, "http")
		e.serveHTTP(ctx, e.httpSrv, ln)
	}
	return nil
}

// trustedAuthorities are the authorities of trust, in order, once each.
func trustedAuthorities(trust []config.TrustedIdentifier) []string {
	var out []string
	for _, t := range trust {
		if t.Authority != "" && !slices.Contains(out, t.Authority) {
			out = append(out, t.Authority)
		}
	}
	return out
}

// version is careflow's module version, as the build recorded it.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

// partitionsOf is the union of m's partitions of the topics named.
func partitionsOf(m map[string][]int32, names ...string) []int32 {
	var out []int32
	for _, n := range names {
		for _, p := range m[n] {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// rulesOf is an interface's accept block as the rules ingest and validate
// both apply.
func rulesOf(in config.Inbound) conformance.Rules {
	return conformance.Rules{MessageTypes: in.Accept.MessageTypes, Versions: in.Accept.Versions, Required: in.Accept.Required}
}

func (e *Engine) startValidate(ctx context.Context) error {
	rules := map[string]validate.Rules{}
	replyTo := map[string]string{}
	for _, in := range e.cfg.Inbound {
		rules[in.Name] = rulesOf(in)
		replyTo[in.Name] = in.ReplyTo
	}
	window := e.dedupWindow()
	dedup := stages.NewDedup(window)
	st, err := validate.New(validate.Config{Interfaces: rules, Serde: e.serde, Dedup: dedup, Registerer: e.metrics, ReplyTo: replyTo})
	if err != nil {
		return fmt.Errorf("engine: validate: %w", err)
	}
	return e.runStage(ctx, stages.RunnerConfig{
		Stage: topics.StageValidate, Inputs: []string{topics.Raw}, Processor: st, State: dedup,
		OnAssigned: func(ctx context.Context, m map[string][]int32) {
			// The dedup state is the committed output itself: every key
			// that reached careflow.valid on these partitions.
			e.loadDedup(ctx, topics.Valid, func(ctx context.Context) error {
				return validate.RebuildDedup(ctx, dedup, e.kafkaFor(topics.StageValidate), m[topics.Raw])
			})
		},
		OnRevoked: func(_ context.Context, m map[string][]int32) { dedup.Forget(m[topics.Raw]) },
	})
}

// destination is how deliver renders for d, without its connector: the
// deliver stage adds one; the console renders with it as it stands.
func (e *Engine) destination(d config.Destination) (deliver.Destination, error) {
	var fields *deliver.Fields
	if d.Fields != nil {
		f, err := deliver.CompileFields(d.Fields)
		if err != nil {
			return deliver.Destination{}, fmt.Errorf("engine: destination %s: fields: %w", d.Name, err)
		}
		fields = f
	}
	return deliver.Destination{
		Name: d.Name, Fields: fields, FHIRSystems: fhir.NewSystems(e.cfg.FHIR.IdentifierSystems),
		FHIRPatientAuthorities: trustedAuthorities(e.cfg.Identity.Trust),
		Target: render.Target{Format: d.Format, Version: d.HL7Version, Charset: d.Charset,
			SendingApplication: d.SendingApplication, SendingFacility: d.SendingFacility,
			ReceivingApplication: d.ReceivingApplication, ReceivingFacility: d.ReceivingFacility},
		BreakerFailures: uint32(d.Breaker.Failures), BreakerOpenFor: d.Breaker.OpenFor,
	}, nil
}

func (e *Engine) startDeliver(ctx context.Context, d config.Destination, m *deliver.Metrics) error {
	var conn deliver.Connector
	switch d.Transport {
	case avro.TransportMLLP:
		tc, err := clientTLS(d.TLS)
		if err != nil {
			return fmt.Errorf("engine: destination %s: %w", d.Name, err)
		}
		conn = deliver.MLLP{Client: &mllp.Client{Addr: d.Address, DialTimeout: d.ConnectTimeout, ACKTimeout: d.AckTimeout, TLSConfig: tc}}
	case avro.TransportHTTP:
		tc, err := clientTLS(d.TLS)
		if err != nil {
			return fmt.Errorf("engine: destination %s: %w", d.Name, err)
		}
		headers := map[string]string{}
		for k, v := range d.Headers {
			headers[k] = v.Value()
		}
		ct := "application/json"
		if d.Format == avro.FormatHL7v2 {
			ct = "x-application/hl7-v2+er7; charset=" + httpCharset(d.Charset)
		}
		conn = deliver.HTTP{Client: &httpx.Client{Timeout: d.AckTimeout, TLSConfig: tc, Headers: headers}, URL: d.URL, ContentType: ct}
	case avro.TransportFHIR:
		c, err := e.fhirConnector(ctx, d)
		if err != nil {
			return err
		}
		conn = c
	default:
		return fmt.Errorf("engine: destination %s: unknown transport %q", d.Name, d.Transport)
	}
	dest, err := e.destination(d)
	if err != nil {
		return err
	}
	dest.Connector = conn
	dedup := stages.NewDedup(e.dedupWindow())
	st, err := deliver.New(deliver.Config{Destination: dest, Serde: e.serde, Dedup: dedup, Logger: e.log, Metrics: m})
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	in := topics.Outbound(d.Name)
	return e.runStage(ctx, stages.RunnerConfig{
		Stage: topics.StageDeliver, Group: "careflow-deliver-" + d.Name, Inputs: []string{in},
		Processor: st, State: dedup,
		RetryInitial: d.Retry.Initial, RetryMax: d.Retry.Max, RetryMultiplier: d.Retry.Multiplier,
		// Keep a failing record in the open transaction no longer than a
		// few attempts; then rewind and pause rather than hold it open.
		HoldLimit: 10 * time.Second,
		PauseFor:  d.Retry.Max,
		OnAssigned: func(ctx context.Context, m map[string][]int32) {
			e.loadDedup(ctx, topics.Outcomes, func(ctx context.Context) error {
				return deliver.RebuildDedup(ctx, dedup, e.kafkaFor(topics.StageDeliver), d.Name, m[in])
			})
		},
		OnRevoked: func(_ context.Context, m map[string][]int32) { dedup.Forget(m[in]) },
	})
}

// httpCharset is the charset parameter of a Content-Type for a configured
// character set (checked at load).
func httpCharset(name string) string {
	cs, _ := hl7v2.DestinationCharset(name)
	return cs.IANA()
}

// dedupWindow is how long idempotency keys and delivered event ids are
// remembered: the longest dedup_window of any inbound interface.
func (e *Engine) dedupWindow() time.Duration {
	var w time.Duration
	for _, in := range e.cfg.Inbound {
		w = max(w, in.DedupWindow)
	}
	return w
}

// loadDedup runs a stage's rebuild of its state (a dedup set, a table's
// changelog) for newly assigned partitions before any of their records is
// processed. It retries until the rebuild succeeds or the stage stops:
// processing on half-built state would let resends or stale updates
// through.
func (e *Engine) loadDedup(ctx context.Context, topic string, rebuild func(context.Context) error) {
	backoff := 200 * time.Millisecond
	for {
		err := rebuild(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		e.log.Error("rebuild stage state from Kafka; retrying", "topic", topic, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}
