package replication

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is when a route lets the sender send: one or more windows
// separated by ';', each an optional list of days and a time range in the
// site's local time:
//
//	Mon-Fri 18:00-06:00
//	Mon-Fri 18:00-06:00; Sat,Sun 00:00-24:00
//	22:00-05:30                       (every day)
//	daily 22:00-05:30                 (the same)
//
// Days are Mon Tue Wed Thu Fri Sat Sun (or their full names, any case),
// single or as a range ("Fri-Mon" wraps around the week), separated by
// ','; "daily" is every day ("daily 22:00-05:00" is "22:00-05:00"). A time is HH:MM from 00:00 to 23:59, and 24:00 as the end of a day.
// A window whose end is not after its start runs overnight: "Fri
// 18:00-06:00" is open from Friday 18:00 until Saturday 06:00. The empty
// schedule is always open.
type Schedule struct {
	windows []window
}

type window struct {
	days       [7]bool // by time.Weekday
	start, end int     // minutes since midnight; end 1..1440
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "sunday": time.Sunday,
	"mon": time.Monday, "monday": time.Monday,
	"tue": time.Tuesday, "tuesday": time.Tuesday,
	"wed": time.Wednesday, "wednesday": time.Wednesday,
	"thu": time.Thursday, "thursday": time.Thursday,
	"fri": time.Friday, "friday": time.Friday,
	"sat": time.Saturday, "saturday": time.Saturday,
}

// ParseSchedule reads a schedule (see Schedule); "" is always open.
func ParseSchedule(s string) (Schedule, error) {
	var sch Schedule
	if strings.TrimSpace(s) == "" {
		return sch, nil
	}
	if len(s) > 1024 {
		return sch, fmt.Errorf("schedule: %d bytes: at most 1024", len(s))
	}
	for i, part := range strings.Split(s, ";") {
		w, err := parseWindow(strings.TrimSpace(part))
		if err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: window %d: %w", s, i+1, err)
		}
		sch.windows = append(sch.windows, w)
	}
	return sch, nil
}

func parseWindow(s string) (window, error) {
	var w window
	if s == "" {
		return w, fmt.Errorf("empty (a stray ';'?)")
	}
	fields := strings.Fields(s)
	var days, times string
	switch len(fields) {
	case 1:
		times = fields[0]
		for d := range w.days {
			w.days[d] = true
		}
	case 2:
		days, times = fields[0], fields[1]
		if err := parseDays(days, &w.days); err != nil {
			return w, err
		}
	default:
		return w, fmt.Errorf("%q: want [DAYS] HH:MM-HH:MM, such as \"Mon-Fri 18:00-06:00\"", s)
	}
	from, to, ok := strings.Cut(times, "-")
	if !ok {
		return w, fmt.Errorf("%q: want a time range HH:MM-HH:MM", times)
	}
	var err error
	if w.start, err = parseClock(from, false); err != nil {
		return w, err
	}
	if w.end, err = parseClock(to, true); err != nil {
		return w, err
	}
	if w.start == w.end {
		return w, fmt.Errorf("%q starts and ends at the same time (use 00:00-24:00 for a whole day)", times)
	}
	return w, nil
}

func parseDays(s string, days *[7]bool) error {
	for _, part := range strings.Split(s, ",") {
		if strings.EqualFold(part, "daily") {
			for d := range days {
				days[d] = true
			}
			continue
		}
		from, to, isRange := strings.Cut(part, "-")
		a, ok := dayNames[strings.ToLower(from)]
		if !ok {
			return fmt.Errorf("day %q: want Mon, Tue, Wed, Thu, Fri, Sat, Sun or daily", from)
		}
		if !isRange {
			days[a] = true
			continue
		}
		b, ok := dayNames[strings.ToLower(to)]
		if !ok {
			return fmt.Errorf("day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun", to)
		}
		for d := a; ; d = (d + 1) % 7 {
			days[d] = true
			if d == b {
				break
			}
		}
	}
	return nil
}

// parseClock reads HH:MM as minutes since midnight; 24:00 only as an end.
func parseClock(s string, end bool) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) != 2 || len(mm) != 2 {
		return 0, fmt.Errorf("time %q: want HH:MM, such as 06:00", s)
	}
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if err1 != nil || err2 != nil || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("time %q: want 00:00 to 23:59 (or 24:00 as an end)", s)
	}
	if h == 24 && !end {
		return 0, fmt.Errorf("time %q: 24:00 may only end a window", s)
	}
	return h*60 + m, nil
}

// Open reports whether t (in the location the schedule is read in) is
// inside a window.
func (s Schedule) Open(t time.Time) bool {
	if len(s.windows) == 0 {
		return true
	}
	mins := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	prev := (day + 6) % 7
	for _, w := range s.windows {
		if w.end > w.start {
			if w.days[day] && mins >= w.start && mins < w.end {
				return true
			}
			continue
		}
		// Overnight: from start on a listed day until end the next day.
		if w.days[day] && mins >= w.start || w.days[prev] && mins < w.end {
			return true
		}
	}
	return false
}

// NextOpen is the first time at or after t when the schedule is open: t
// itself when it is open now. It steps minute by minute in t's location,
// so a daylight-saving change is read as a wall clock reads it.
func (s Schedule) NextOpen(t time.Time) time.Time {
	if s.Open(t) {
		return t
	}
	next := t.Truncate(time.Minute)
	for range 8 * 24 * 60 {
		next = next.Add(time.Minute)
		if s.Open(next) {
			return next
		}
	}
	return t // unreachable: every window is open for at least a minute a week
}

// String writes the schedule in its canonical form.
func (s Schedule) String() string {
	parts := make([]string, len(s.windows))
	for i, w := range s.windows {
		clock := fmt.Sprintf("%02d:%02d-%02d:%02d", w.start/60, w.start%60, w.end/60, w.end%60)
		if d := w.dayList(); d != "" {
			clock = d + " " + clock
		}
		parts[i] = clock
	}
	return strings.Join(parts, "; ")
}

// dayList writes the days as ranges starting Monday; "" when every day.
func (w window) dayList() string {
	names := [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	all := true
	for _, on := range w.days {
		all = all && on
	}
	if all {
		return ""
	}
	order := [7]time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}
	var out []string
	for i := 0; i < 7; {
		if !w.days[order[i]] {
			i++
			continue
		}
		j := i
		for j+1 < 7 && w.days[order[j+1]] {
			j++
		}
		if j == i {
			out = append(out, names[order[i]])
		} else {
			out = append(out, names[order[i]]+"-"+names[order[j]])
		}
		i = j + 1
	}
	return strings.Join(out, ",")
}
