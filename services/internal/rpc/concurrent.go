package rpc

import (
	"encoding/json"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Concurrent serves h's requests on goroutines, at most cap(sem) at once;
// beyond that the subscription waits (and the server buffers). inflight,
// when not nil, counts the requests being served (a service waits for it
// when it stops). nc must be the connection the micro service runs on.
//
// The goroutine answers through a Detach'ed request: micro's own request
// must not be written once its handler has returned (micro reads its error
// then, for $SRV STATS), so these endpoints' errors are not counted there.
func Concurrent(nc *nats.Conn, sem chan struct{}, inflight *sync.WaitGroup, h micro.Handler) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		sem <- struct{}{}
		if inflight != nil {
			inflight.Add(1)
		}
		d := Detach(r, nc)
		go func() {
			defer func() {
				<-sem
				if inflight != nil {
					inflight.Done()
				}
			}()
			h.Handle(d)
		}()
	})
}

// Detach returns r answering by publishing to its reply subject on nc, for
// answering after r's micro handler has returned.
func Detach(r micro.Request, nc *nats.Conn) micro.Request {
	return &detached{Request: r, nc: nc}
}

// detached answers a micro request by publishing to its reply subject.
type detached struct {
	micro.Request
	nc *nats.Conn
}

func (d *detached) Respond(data []byte, opts ...micro.RespondOpt) error {
	m := &nats.Msg{Subject: d.Reply(), Data: data}
	for _, o := range opts {
		o(m)
	}
	return d.nc.PublishMsg(m)
}

func (d *detached) RespondJSON(v any, opts ...micro.RespondOpt) error {
	b, err := json.Marshal(v)
	if err != nil {
		return micro.ErrMarshalResponse
	}
	return d.Respond(b, opts...)
}

func (d *detached) Error(code, description string, data []byte, opts ...micro.RespondOpt) error {
	h := micro.Headers{micro.ErrorHeader: {description}, micro.ErrorCodeHeader: {code}}
	return d.Respond(data, append([]micro.RespondOpt{micro.WithHeaders(h)}, opts...)...)
}
