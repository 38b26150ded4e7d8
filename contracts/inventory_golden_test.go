package contracts

import "encoding/json"

var exampleInventory = Inventory{
	OS:       OSInfo{Name: "Debian GNU/Linux", Version: "12", Family: "linux", Kernel: "6.1.0-18-amd64"},
	Arch:     "amd64",
	CPU:      CPUInfo{Model: "Intel(R) Xeon(R) CPU", Cores: 2},
	Memory:   MemoryInfo{Total: 25_769_803_776},
	Disks:    []Disk{{Device: "/dev/vda", Mount: "/", FSType: "ext4", Total: 270_582_939_648, Free: 85_899_345_920}},
	Networks: []NetIface{{Name: "eth0", MAC: "52:54:00:12:34:56", Addrs: []string{"192.0.2.10/24", "fe80::1/64"}}},
	Software: []Software{{Name: "openssl", Version: "3.0.11-1~deb12u2", Source: "dpkg"}},
	Users:    []string{"alice"},
	Admins:   []string{"alice", "root"},
	Labels:   map[string]string{"rack": "b4"},
}

func init() {
	goldenExamples[TypeInventoryReport] = &InventoryReport{
		Header: hdr(TypeInventoryReport), Seq: 7, Base: 6, Full: true, Collected: t1,
		Inventory: exampleInventory, Changed: []string{"software"},
	}
	goldenExamples[TypeInventoryRefresh] = &InventoryRefresh{Header: hdr(TypeInventoryRefresh), Full: true}
	goldenExamples[TypeInventoryRequest] = &InventoryRequest{Header: hdr(TypeInventoryRequest), Ref: "web-01", Since: t0}
	goldenExamples[TypeInventoryResponse] = &InventoryResponse{
		Header: hdr(TypeInventoryResponse), Client: exampleClient, Seq: 7, Collected: t0, Received: t1, Inventory: exampleInventory,
	}
	goldenExamples[TypeInventoryHistory] = &InventoryHistoryResponse{
		Header: hdr(TypeInventoryHistory), Client: exampleClient,
		Changes: []InventoryChange{{Time: t1, Seq: 7, Section: "software", Change: "changed", Item: "openssl", From: "3.0.9", To: "3.0.11"}},
	}
	goldenExamples[TypeOutboxBatch] = &OutboxBatch{
		Header: hdr(TypeOutboxBatch),
		Items:  []OutboxItem{{ID: exampleMsgID, Type: "steward.v1.note", Time: t0, Data: json.RawMessage(`7`)}},
	}
	goldenExamples[TypeOutboxAck] = &OutboxAck{
		Header: hdr(TypeOutboxAck), Stored: []string{exampleMsgID},
		Rejected: []OutboxRejection{{ID: "0195a3c4-0000-7000-8000-0000000000e1", Code: CodeBadRequest, Message: "malformed status message"}},
	}
}
