package replication

import (
	"strings"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	tests := []struct {
		in    string
		canon string // "" when an error is wanted
		err   string
	}{
		{"", "", ""},
		{"Mon-Fri 18:00-06:00", "Mon-Fri 18:00-06:00", ""},
		{"mon-fri 18:00-06:00", "Mon-Fri 18:00-06:00", ""},
		{"22:00-05:30", "22:00-05:30", ""},
		{"Sat,Sun 00:00-24:00", "Sat-Sun 00:00-24:00", ""},
		{"Fri-Mon 08:00-17:00", "Mon,Fri-Sun 08:00-17:00", ""},
		{"Monday,Wednesday 09:00-10:00; Sat 12:00-13:00", "Mon,Wed 09:00-10:00; Sat 12:00-13:00", ""},
		{"Mon-Sun 01:00-02:00", "01:00-02:00", ""},
		// The example routes set --help gives.
		{"daily 22:00-05:00", "22:00-05:00", ""},
		{"Daily 22:00-05:00; Sat 12:00-13:00", "22:00-05:00; Sat 12:00-13:00", ""},
		{"daily-Mon 22:00-05:00", "", `day "daily"`},
		{"Mon-Fri 18:00-6:00", "", `time "6:00": want HH:MM`},
		{"Mon-Fri 25:00-06:00", "", "want 00:00 to 23:59"},
		{"Mon-Fri 18:60-06:00", "", "want 00:00 to 23:59"},
		{"Mon-Fri 24:00-06:00", "", "24:00 may only end a window"},
		{"Mon-Fri 18:00", "", "time range"},
		{"Mon-Fry 18:00-06:00", "", `day "Fry"`},
		{"Mon-Fri 18:00-18:00", "", "same time"},
		{"Mon-Fri 18:00-06:00;", "", "window 2: empty"},
		{"Mon Tue 18:00-06:00", "", "want [DAYS] HH:MM-HH:MM"},
		{"Mon-Fri 18:00-06:00-07:00", "", "want HH:MM"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := ParseSchedule(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseSchedule(%q) = %v, want an error containing %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSchedule(%q): %v", tt.in, err)
			}
			if got := s.String(); got != tt.canon {
				t.Fatalf("String() = %q, want %q", got, tt.canon)
			}
			again, err := ParseSchedule(s.String())
			if err != nil || again.String() != tt.canon {
				t.Fatalf("the canonical form does not read back: %q %v", again.String(), err)
			}
		})
	}
}

func TestScheduleOpen(t *testing.T) {
	// 2026-11-23 is a Monday.
	at := func(day int, hhmm string) time.Time {
		tm, _ := time.Parse("15:04", hhmm)
		return time.Date(2026, 11, 23+day, tm.Hour(), tm.Minute(), 0, 0, time.UTC)
	}
	const mon, tue, fri, sat, sun = 0, 1, 4, 5, 6
	nights, _ := ParseSchedule("Mon-Fri 18:00-06:00")
	weekend, _ := ParseSchedule("Sat,Sun 00:00-24:00")
	tests := []struct {
		s    Schedule
		t    time.Time
		open bool
	}{
		{nights, at(mon, "17:59"), false},
		{nights, at(mon, "18:00"), true},
		{nights, at(tue, "05:59"), true}, // Monday's night
		{nights, at(tue, "06:00"), false},
		{nights, at(mon, "05:00"), false}, // Sunday's night: Sunday is not listed
		{nights, at(sat, "05:00"), true},  // Friday's night
		{nights, at(sat, "18:00"), false},
		{weekend, at(sat, "00:00"), true},
		{weekend, at(sun, "23:59"), true},
		{weekend, at(fri, "23:59"), false},
		{Schedule{}, at(mon, "12:00"), true},
	}
	for _, tt := range tests {
		if got := tt.s.Open(tt.t); got != tt.open {
			t.Errorf("%q at %s: Open = %v, want %v", tt.s.String(), tt.t.Format("Mon 15:04"), got, tt.open)
		}
	}
	if got, want := nights.NextOpen(at(mon, "12:34")), at(mon, "18:00"); !got.Equal(want) {
		t.Errorf("NextOpen(Mon 12:34) = %s, want %s", got, want)
	}
	if got, want := nights.NextOpen(at(sat, "07:00")), at(mon+7, "18:00"); !got.Equal(want) {
		t.Errorf("NextOpen(Sat 07:00) = %s, want %s", got, want)
	}
	if now := at(mon, "19:00"); !nights.NextOpen(now).Equal(now) {
		t.Error("NextOpen of an open time is not that time")
	}
}
