package admin

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/rbac"
)

// listServices asks every micro service on the bus for its INFO and STATS
// ($SRV, the one discovery and health channel) and lists the instances.
func (s *Service) listServices(ctx context.Context, from contracts.SubjectInfo, _ *contracts.ServiceListRequest) (*contracts.ServiceListResponse, error) {
	if err := s.authorize(from, rbac.SiteRead); err != nil {
		return nil, err
	}
	infos, err := gather(ctx, s.cfg.NC, "$SRV.INFO", nil, 200*time.Millisecond)
	if err != nil {
		return nil, err
	}
	stats, err := gather(ctx, s.cfg.NC, "$SRV.STATS", nil, 200*time.Millisecond)
	if err != nil {
		return nil, err
	}
	byID := map[string]*contracts.ServiceInstance{}
	for _, raw := range infos {
		var info micro.Info
		if json.Unmarshal(raw, &info) != nil || info.ID == "" {
			continue
		}
		inst := &contracts.ServiceInstance{Name: info.Name, ID: info.ID, Version: info.Version, Endpoints: []string{}}
		for _, e := range info.Endpoints {
			inst.Endpoints = append(inst.Endpoints, e.Subject)
		}
		byID[info.ID] = inst
	}
	for _, raw := range stats {
		var st micro.Stats
		if json.Unmarshal(raw, &st) != nil {
			continue
		}
		inst, ok := byID[st.ID]
		if !ok {
			continue
		}
		inst.Started = st.Started
		for _, e := range st.Endpoints {
			inst.Requests += e.NumRequests
			inst.Errors += e.NumErrors
		}
	}
	out := &contracts.ServiceListResponse{Header: contracts.NewHeader(contracts.TypeServiceListResponse), Services: []contracts.ServiceInstance{}}
	for _, inst := range byID {
		out.Services = append(out.Services, *inst)
	}
	sort.Slice(out.Services, func(i, j int) bool {
		a, b := out.Services[i], out.Services[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.ID < b.ID
	})
	return out, nil
}
