// This file holds the routing stage's Prometheus series. Labels are route
// and destination names from the configuration, never event content.

package route

import (
	"github.com/careflow-health/careflow/stages"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	routed     *prometheus.CounterVec // destination, route (the route that won)
	unrouted   prometheus.Counter
	duplicates prometheus.Counter     // events already routed in another form
	evalErrors *prometheus.CounterVec // route
	exceptions *prometheus.CounterVec // code
	orders     *prometheus.CounterVec // state
	replies    *prometheus.CounterVec // interface, code (AA, AE)
	// notifications counts return notifications by interface and code.
	notifications *prometheus.CounterVec
}

// newMetrics creates the series and registers them on reg. A series that a
// previous Stage already registered on reg is reused, so a stage rebuilt
// after a configuration reload keeps counting on the same series.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		routed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_route_total",
			Help: "Events routed to a destination, by destination and the route that chose it.",
		}, []string{"destination", "route"}),
		unrouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "careflow_route_unrouted_total",
			Help: "Events no route took.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "careflow_route_duplicate_events_total",
			Help: "Events not routed because the same result or order was already routed (another standard, another interface).",
		}),
		evalErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_route_eval_errors_total",
			Help: "Route conditions that failed at run time (treated as no match).",
		}, []string{"route"}),
		exceptions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_exceptions_total",
			Help: "Exceptions raised (careflow.exceptions), by code.",
		}, []string{"code"}),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_order_transitions_total",
			Help: "Orders entering a state (careflow.orders), by the state.",
		}, []string{"state"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_application_acks_total",
			Help: "Application acknowledgements sent to senders (enhanced mode), by inbound interface and MSA-1.",
		}, []string{"interface", "code"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_return_notifications_total",
			Help: "Return notifications sent to senders, by inbound interface and exception code.",
		}, []string{"interface", "code"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.routed, err = stages.Register(reg, m.routed)
	if err != nil {
		return nil, err
	}
	m.unrouted, err = stages.Register(reg, m.unrouted)
	if err != nil {
		return nil, err
	}
	m.duplicates, err = stages.Register(reg, m.duplicates)
	if err != nil {
		return nil, err
	}
	m.evalErrors, err = stages.Register(reg, m.evalErrors)
	if err != nil {
		return nil, err
	}
	m.exceptions, err = stages.Register(reg, m.exceptions)
	if err != nil {
		return nil, err
	}
	m.orders, err = stages.Register(reg, m.orders)
	if err != nil {
		return nil, err
	}
	m.replies, err = stages.Register(reg, m.replies)
	if err != nil {
		return nil, err
	}
	m.notifications, err = stages.Register(reg, m.notifications)
	if err != nil {
		return nil, err
	}
	return m, nil
}
