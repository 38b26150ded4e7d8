package control

// VerbAssist is the streaming verb of `steward-agent assist`: "assist USER
// [MESSAGE]" (MESSAGE base64url, no padding). The command shares the
// user's terminal with the agent; both sides then write AssistMsg values,
// one JSON line each. The agent's first line is AssistReady (the request
// for assistance was sent to the site) or a failure answer.
//
// Output of the shared terminal flows with credits: the command keeps at
// most AssistCredits AssistOutput messages unacknowledged, and the agent
// acknowledges each (AssistOutputAck) once it took it for the helper (or
// at once while no helper is connected). A helper that lags therefore
// holds back the shared terminal, never a buffer. Input is one message at
// a time: the agent sends the next AssistInput after the command's
// AssistInputAck, and acknowledges the helper's frame only then.
const VerbAssist = "assist"

// AssistCredits is how many AssistOutput messages may be unacknowledged.
const AssistCredits = 16

// Types of AssistMsg.
const (
	// agent -> command
	AssistReady      = "steward.v1.assist_ready"       // Request: the request's ID, Text: what the site said
	AssistInput      = "steward.v1.assist_input"       // Data: a helper's keystrokes, for the terminal
	AssistOutputAck  = "steward.v1.assist_output_ack"  // one AssistOutput taken
	AssistPrompt     = "steward.v1.assist_prompt"      // Prompt: a helper's offer (or a join) waiting for the user
	AssistPromptDone = "steward.v1.assist_prompt_done" // Text: the prompt's ID, answered or timed out
	AssistConnected  = "steward.v1.assist_connected"   // Session, Operator, Access: a helper is connected (or joined)
	AssistEnded      = "steward.v1.assist_ended"       // Session, Text: a helper's session ended, and why

	// command -> agent
	AssistOutput   = "steward.v1.assist_output"    // Data: what the terminal showed (at most 32 KiB)
	AssistInputAck = "steward.v1.assist_input_ack" // the last AssistInput is written to the terminal
	AssistAnswer   = "steward.v1.assist_answer"    // Text: a prompt's ID, Accept: the user's answer
	AssistEnd      = "steward.v1.assist_end"       // end the helpers' sessions now
)

// AssistMsg is one message of the assist stream.
type AssistMsg struct {
	Type     string         `json:"type"`
	Data     []byte         `json:"data,omitempty"`
	Text     string         `json:"text,omitempty"`
	Request  string         `json:"request,omitempty"`
	Session  string         `json:"session,omitempty"`
	Operator string         `json:"operator,omitempty"`
	Access   string         `json:"access,omitempty"`
	Prompt   *ConsentPrompt `json:"prompt,omitempty"`
	Accept   bool           `json:"accept,omitempty"`
}
