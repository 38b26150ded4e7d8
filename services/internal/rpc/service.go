package rpc

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/contracts"
)

// Endpoint is one row of a service's handler table: the subject is built
// for the site when the service registers.
type Endpoint struct {
	Name    string
	Subject func(site string) (string, error)
	Handler micro.Handler
}

// AgentUp is the subject of kind from every agent of the site.
func AgentUp(kind string) func(string) (string, error) {
	return func(site string) (string, error) { return contracts.AgentUpAll(site, kind) }
}

// OpUp is the subject of kind from every operator of the site.
func OpUp(kind string) func(string) (string, error) {
	return func(site string) (string, error) { return contracts.OpUpAll(site, kind) }
}

// Svc is the service-to-service subject of service's verb: only services
// may publish on it, so its handlers answer other services, never
// operators or agents.
func Svc(service, verb string) func(string) (string, error) {
	return func(site string) (string, error) { return contracts.Svc(site, service, verb) }
}

// AddService registers the micro service name with every endpoint of
// table. The queue group is the service's own name, so instances share the
// work while another service subscribed to the same subject (heartbeats,
// say) still gets its own copy. On a connected connection it returns once
// its server has the endpoints' subscriptions, so a request sent there
// after it finds them (other servers of a cluster learn of them a moment
// later).
func AddService(nc *nats.Conn, site, name, version, description string, table []Endpoint) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:        name,
		Version:     version,
		Description: description,
		QueueGroup:  name,
		Metadata:    map[string]string{"site": site},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: add service: %w", name, err)
	}
	for _, e := range table {
		subj, err := e.Subject(site)
		if err == nil {
			err = svc.AddEndpoint(e.Name, e.Handler, micro.WithEndpointSubject(subj))
		}
		if err != nil {
			svc.Stop()
			return nil, fmt.Errorf("%s: endpoint %s: %w", name, e.Name, err)
		}
	}
	// Best effort: a connection that is reconnecting sends the
	// subscriptions again once it is back.
	if nc.IsConnected() {
		_ = nc.FlushTimeout(2 * time.Second)
	}
	return svc, nil
}

// Route makes a row of a handler table.
func Route(name string, subject func(site string) (string, error), h micro.Handler) Endpoint {
	return Endpoint{Name: name, Subject: subject, Handler: h}
}
