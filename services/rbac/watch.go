package rbac

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/stewardhq/steward/contracts"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The published read model: the admin service owns the bucket and is its
// only writer; every service watches it.
const (
	Bucket   = "admin-rbac" // KV bucket, history 1
	ModelKey = "model"      // the one key: the Document as JSON
)

// Decode reads a stored document into a model of revision rev.
func Decode(data []byte, rev uint64) (*Model, error) {
	var doc Document
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("the RBAC model is unreadable: %w", err)
	}
	return NewModel(doc, rev)
}

// Encode writes a document for storage.
func Encode(doc Document) []byte {
	doc.Schema = Schema
	data, _ := json.Marshal(doc)
	return data
}

// Watcher keeps an in-process copy of the RBAC model, current with the
// bucket. Until it has loaded a model, Model returns nil, and a nil model
// refuses everything: a service authorising with a Watcher fails closed.
type Watcher struct {
	cur     atomic.Pointer[Model]
	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every change
	err     atomic.Pointer[error]
	done    chan struct{}
}

// Watch starts watching the model in the admin-rbac bucket of js until ctx
// ends. It returns at once: when the bucket does not exist yet (the admin
// service has not started), the watcher retries in the background, and
// Model stays nil meanwhile.
func Watch(ctx context.Context, js jetstream.JetStream) (*Watcher, error) {
	if js == nil {
		return nil, errors.New("rbac: watch needs a JetStream context")
	}
	w := &Watcher{changed: make(chan struct{}), done: make(chan struct{})}
	go w.run(ctx, js)
	return w, nil
}

// Model returns the current snapshot, nil until one is loaded. The
// snapshot never changes; call Model again for a newer one.
func (w *Watcher) Model() *Model { return w.cur.Load() }

// Err returns the last problem the watcher met (bucket missing, document
// unreadable), nil when it is current.
func (w *Watcher) Err() error {
	if e := w.err.Load(); e != nil {
		return *e
	}
	return nil
}

// Done is closed when the watcher has stopped (its context ended).
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Wait returns the model once it is at revision rev or later (rev 0: any
// model at all), or ctx's error.
func (w *Watcher) Wait(ctx context.Context, rev uint64) (*Model, error) {
	for {
		w.mu.Lock()
		ch := w.changed
		w.mu.Unlock()
		if m := w.cur.Load(); m != nil && m.Revision() >= rev {
			return m, nil
		}
		select {
		case <-ch:
		case <-w.done:
			return nil, errors.New("rbac: the watcher has stopped")
		case <-ctx.Done():
			return nil, fmt.Errorf("rbac: waiting for the model at revision %d: %w", rev, ctx.Err())
		}
	}
}

func (w *Watcher) set(m *Model, err error) {
	if err != nil {
		w.err.Store(&err)
	} else {
		w.err.Store(nil)
	}
	w.cur.Store(m)
	w.mu.Lock()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

func (w *Watcher) fail(err error) { w.err.Store(&err) }

func (w *Watcher) run(ctx context.Context, js jetstream.JetStream) {
	defer close(w.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if err := w.follow(ctx, js); err != nil && ctx.Err() == nil {
			w.fail(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// follow watches the key until the watch ends. An unreadable or deleted
// document clears the model: better refuse everything than authorise from
// a state that is no longer the bucket's.
func (w *Watcher) follow(ctx context.Context, js jetstream.JetStream) error {
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return fmt.Errorf("rbac: bucket %s: %w", Bucket, err)
	}
	watch, err := kv.Watch(ctx, ModelKey)
	if err != nil {
		return fmt.Errorf("rbac: watch %s: %w", Bucket, err)
	}
	defer watch.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-watch.Updates():
			if !ok {
				return errors.New("rbac: the watch of the model ended")
			}
			if e == nil {
				continue // the initial values are delivered
			}
			if e.Operation() != jetstream.KeyValuePut {
				w.set(nil, errors.New("rbac: the model was deleted"))
				continue
			}
			m, err := Decode(e.Value(), e.Revision())
			w.set(m, err)
		}
	}
}

// Source gives the current model; a *Watcher is one. Services authorise
// every operator request from it, in-process.
type Source interface{ Model() *Model }

// Current returns src's model to decide with. With off set (a service
// tested alone, without authorization) it returns nil and no error; while
// no model is loaded it refuses with CodeUnavailable, so a service fails
// closed.
func Current(src Source, off bool, service string) (*Model, error) {
	if off {
		return nil, nil
	}
	var m *Model
	if src != nil {
		m = src.Model()
	}
	if m == nil {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "%s has not loaded the authorization model yet; try again", service)
	}
	return m, nil
}
