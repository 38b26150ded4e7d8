package status

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/internal/sitepeers"
)

// Forwarding to the parent site (docs/replication.md, "Site hierarchy").
//
// A forward rule whose target is contracts.ForwardParent sends each
// matching message to the parent site's status service: a request on
// steward.<parent>.site.<this site>.status.forward over SiteNC, whose inbox
// (contracts.SiteInbox of this site) is the only one the leaf link carries answers
// to. The parent's code comes from admin's site peers (role parent).
//
// The parent serves steward.<parent>.site.*.status.forward. The sending site
// is the subject's fourth token, which the leaf link's permissions let a
// child publish only as itself; it must be a child of this site. The
// message is stored in this site's STATUS_AGENTS stream with Source and
// ForwardedFrom the sending site and its uuid as Nats-Msg-Id, so a resend
// is never stored twice; the rules then run on it like on any message.

// peerCacheTTL is how long the peers admin answered are used before asking
// again. Failures are not remembered.
const peerCacheTTL = 10 * time.Second

// Defaults of the per-site forwarding rate limit.
const (
	DefaultForwardRate  = 500
	DefaultForwardBurst = 5000
)

// PeerSource lists the sites linked to this one (admin keeps them).
type PeerSource interface {
	Peers(ctx context.Context) ([]contracts.SitePeer, error)
}

// BusPeers asks the admin service of site Site on its service verb
// contracts.VerbSitePeers.
type BusPeers struct {
	NC   *nats.Conn
	Site string
}

// Peers implements PeerSource.
func (b BusPeers) Peers(ctx context.Context) ([]contracts.SitePeer, error) {
	return sitepeers.Ask(ctx, b.NC, b.Site, "")
}

// StaticPeers is a fixed list of peers (tests, tools).
type StaticPeers []contracts.SitePeer

// Peers implements PeerSource.
func (p StaticPeers) Peers(context.Context) ([]contracts.SitePeer, error) { return p, nil }

// cachedPeers remembers what src answered for ttl.
type cachedPeers struct {
	src PeerSource
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	peers []contracts.SitePeer
	at    time.Time
}

func (c *cachedPeers) Peers(ctx context.Context) ([]contracts.SitePeer, error) {
	now := c.now()
	c.mu.Lock()
	if !c.at.IsZero() && now.Sub(c.at) < c.ttl && now.Sub(c.at) >= 0 {
		p := c.peers
		c.mu.Unlock()
		return p, nil
	}
	c.mu.Unlock()
	p, err := c.src.Peers(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.peers, c.at = p, now
	c.mu.Unlock()
	return p, nil
}

// peerWithRole is the peer site with role, "" when none.
func (s *Service) peerWithRole(ctx context.Context, site, role string) (string, error) {
	peers, err := s.peers.Peers(ctx)
	if err != nil {
		return "", err
	}
	for _, p := range peers {
		if p.Role == role && (site == "" || p.Site == site) {
			return p.Site, nil
		}
	}
	return "", nil
}

// forwardToParent sends msg to the parent site's status service and waits
// for its acknowledgement. No parent, or no answer, fails the action (it
// is retried and reported like any failing action).
func (s *Service) forwardToParent(ctx context.Context, msg *contracts.StatusMessage) error {
	if s.cfg.SiteNC == nil {
		return errors.New("forward to the parent site: this status service has no connection to other sites (Config.SiteNC)")
	}
	parent, err := s.peerWithRole(ctx, "", contracts.PeerParent)
	if err != nil {
		return fmt.Errorf("forward to the parent site: the peers of site %s cannot be read: %w", s.cfg.Site, err)
	}
	if parent == "" {
		return fmt.Errorf("forward to the parent site: site %s has no parent site (link it with steward serve --parent)", s.cfg.Site)
	}
	subj, err := contracts.SiteSubject(parent, s.cfg.Site, contracts.KindStatusForward)
	if err != nil {
		return err
	}
	out := *msg
	out.Type = contracts.TypeStatusMessage
	var ack contracts.StatusForwardAck
	if err := rpc.Call(ctx, s.cfg.SiteNC, subj, &out, &ack); err != nil {
		return fmt.Errorf("forward to parent site %s: %w", parent, err)
	}
	if ack.MessageID != msg.ID {
		return fmt.Errorf("forward to parent site %s: acknowledged message %q, not %q", parent, ack.MessageID, msg.ID)
	}
	return nil
}

// maxForwardInstance bounds the Instance a forwarded message keeps.
const maxForwardInstance = 256

// receiveForward stores a status message a child site forwarded. The child
// is the subject's site token; the payload never says who sent it.
func (s *Service) receiveForward(ctx context.Context, from contracts.SubjectInfo, m *contracts.StatusMessage) (*contracts.StatusForwardAck, error) {
	child := from.Principal
	if from.Space != "site" || from.Site != s.cfg.Site || child == "" {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "forwarded status messages come on steward.%s.site.<child>.%s", s.cfg.Site, contracts.KindStatusForward)
	}
	if child == s.cfg.Site {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "site %s cannot forward to itself", s.cfg.Site)
	}
	now := s.cfg.Now()
	if ok, report := s.fwdLimiter.allow(child, now, s.cfg.RateReport); !ok {
		if report {
			s.emit.Emit(ctx, contracts.StatusRateLimited, map[string]string{
				"source": child,
				"rate":   strconv.FormatFloat(s.cfg.ForwardRate, 'f', -1, 64),
				"burst":  strconv.Itoa(s.cfg.ForwardBurst),
			})
		}
		return nil, contracts.Errorf(contracts.CodeUnavailable, "site %s forwards status messages faster than %g per second; retry later", child, s.cfg.ForwardRate)
	}
	known, err := s.peerWithRole(ctx, child, contracts.PeerChild)
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeUnavailable, "the peers of site %s cannot be read: %v", s.cfg.Site, err)
	}
	if known == "" {
		return nil, contracts.Errorf(contracts.CodePermissionDenied, "site %s is not a child of site %s", child, s.cfg.Site)
	}
	stored, err := fromChild(m, s.cfg.Site, child, now, s.cfg.MaxClockSkew)
	if err != nil {
		return nil, err
	}
	msg, err := storeMsg(agentsToken, stored, now)
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	pa, err := s.js.PublishMsg(sctx, msg)
	if err != nil {
		return nil, fmt.Errorf("store status message %s forwarded by site %s: %w", stored.ID, child, err)
	}
	return &contracts.StatusForwardAck{
		Header:    contracts.NewHeader(contracts.TypeStatusForwardAck),
		MessageID: stored.ID,
		Duplicate: pa.Duplicate,
	}, nil
}

// fromChild is the message this site stores for m, forwarded by site
// child. It keeps what the child's catalog made of it (uuid, time, id,
// severity, component, text, properties, audit and unknown marks, trace,
// instance) and sets who sent it from the subject: Site is this site,
// Source and ForwardedFrom the child. A client ID of the child's is not one
// of this site's clients: Client is cleared (the instance says which client
// it was, "agent/<client id>"), so it never counts in this site's client
// summaries nor answers --client here.
func fromChild(m *contracts.StatusMessage, site, child string, now time.Time, skew time.Duration) (contracts.StatusMessage, error) {
	bad := func(format string, args ...any) error {
		return contracts.Errorf(contracts.CodeBadRequest, "forwarded status message: "+format, args...)
	}
	if err := m.Validate(); err != nil {
		return contracts.StatusMessage{}, bad("%v", err)
	}
	if _, err := uuid.Parse(m.ID); err != nil || len(m.ID) != 36 {
		return contracts.StatusMessage{}, bad("id %q: want a UUID", m.ID)
	}
	if !contracts.ValidSeverity(m.Severity) {
		return contracts.StatusMessage{}, bad("severity %q: must be one of info, warning, error", m.Severity)
	}
	if err := contracts.ValidToken(m.Component); err != nil {
		return contracts.StatusMessage{}, bad("component: %v", err)
	}
	instance := m.Instance
	if instance == "" && m.Client != "" {
		instance = "agent/" + m.Client
	}
	out := contracts.StatusMessage{
		Header:        contracts.Header{Type: contracts.TypeStatusMessage, ID: m.ID, Time: m.Time.UTC()},
		MsgID:         m.MsgID,
		Severity:      m.Severity,
		Component:     m.Component,
		Site:          site,
		Source:        child,
		Instance:      truncate(instance, maxForwardInstance),
		Text:          m.Text,
		Properties:    m.Properties,
		TraceID:       m.TraceID,
		Audit:         m.Audit,
		Unknown:       m.Unknown,
		Received:      now.UTC(),
		ForwardedFrom: child,
	}
	if out.Time.After(now.Add(skew)) {
		out.Time = out.Received
	}
	if !validTraceID(out.TraceID) {
		out.TraceID = ""
	}
	return out, nil
}
