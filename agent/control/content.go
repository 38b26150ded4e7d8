package control

import "github.com/stewardhq/steward/contracts"

// VerbContent lists the package versions the agent holds, fetches or
// failed to fetch; it answers a ContentList.
const VerbContent = "content"

// TypeContentList is the type string of VerbContent's answer.
const TypeContentList = "steward.v1.agent_content_list"

// ContentList is the answer of VerbContent.
type ContentList struct {
	Type    string                  `json:"type"`
	Dir     string                  `json:"dir"` // the content directory; "" when the agent keeps none
	Content []contracts.ContentHeld `json:"content"`
}
