package status

import (
	"context"
	"encoding/json"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// answer is rpc.Handler for operator requests, with the answer's size
// checked before it is sent. An answer over what the server carries
// (max_payload) would fail to send, and the operator would only time out:
// it is answered instead with too_large, which says how big it was. Pages
// (list, rules test) and client summaries stop well before that
// (pageBudget), so this is the last resort.
func answer[Req, Resp any](s *Service, typ string, fn rpc.Func[Req, Resp]) micro.Handler {
	return rpc.RawHandler(s.log, typ, func(ctx context.Context, from contracts.SubjectInfo, r micro.Request) ([]byte, nats.Header, error) {
		var req Req
		if err := contracts.Decode(r.Data(), typ, &req); err != nil {
			return nil, nil, err
		}
		resp, err := fn(ctx, from, &req)
		if err != nil {
			return nil, nil, err
		}
		b, err := json.Marshal(resp)
		if err != nil {
			return nil, nil, err
		}
		if max := s.maxReply(); len(b) > max {
			s.log.Warn("answer too large for the server; answered too_large", "request", typ, "bytes", len(b), "max", max)
			return nil, nil, contracts.Errorf(contracts.CodeTooLarge, "the answer is %d bytes, over the %d the server carries in one message; ask for less (a narrower filter, a lower limit)", len(b), max)
		}
		return b, nil, nil
	})
}
