package contracts

import (
	"reflect"
	"testing"
)

// fill sets every setting of s to a value made by mk (per kind).
func fill(t *testing.T, s *SettingsSections, n int) {
	t.Helper()
	forEachSetting(reflect.ValueOf(s).Elem(), true, func(path string, f reflect.Value) {
		v := reflect.New(f.Type().Elem())
		switch e := v.Elem(); e.Kind() {
		case reflect.Bool:
			e.SetBool(n%2 == 1)
		case reflect.String:
			e.SetString(path + string(rune('a'+n)))
		case reflect.Int, reflect.Int64, reflect.Int32:
			e.SetInt(int64(n + 1))
		case reflect.Slice:
			el := reflect.New(e.Type().Elem()).Elem()
			switch el.Kind() {
			case reflect.String:
				el.SetString(path + string(rune('a'+n)))
			case reflect.Int:
				el.SetInt(int64(n + 1))
			default:
				t.Fatalf("%s: slice of %s: add it to the test", path, el.Kind())
			}
			e.Set(reflect.Append(e, el))
		default:
			t.Fatalf("%s: kind %s: add it to the test", path, e.Kind())
		}
		f.Set(v)
	})
}

// TestSettingsClone: a clone equals its original and shares nothing with
// it: setting every value of the clone, even inside slices, leaves the
// original as it was. Nil sections and settings stay nil.
func TestSettingsClone(t *testing.T) {
	var orig SettingsSections
	fill(t, &orig, 1)
	var want SettingsSections
	fill(t, &want, 1) // the same values, apart
	cp := orig.Clone()
	if !reflect.DeepEqual(cp, orig) {
		t.Fatalf("clone differs:\n%+v\n%+v", cp, orig)
	}
	// Change the clone through its existing pointers and slices.
	forEachSetting(reflect.ValueOf(&cp).Elem(), false, func(path string, f reflect.Value) {
		e := f.Elem()
		switch e.Kind() {
		case reflect.Bool:
			e.SetBool(!e.Bool())
		case reflect.String:
			e.SetString("changed")
		case reflect.Int, reflect.Int64, reflect.Int32:
			e.SetInt(99)
		case reflect.Slice:
			if el := e.Index(0); el.Kind() == reflect.String {
				el.SetString("changed")
			} else {
				el.SetInt(99)
			}
		}
	})
	if !reflect.DeepEqual(orig, want) {
		t.Fatalf("changing the clone changed the original:\n%+v\nwant\n%+v", orig, want)
	}
	var partial SettingsSections
	fill(t, &partial, 2)
	partial.RemoteAssistance = nil
	partial.RemoteTools.PermittedViewers = nil
	if got := partial.Clone(); got.RemoteAssistance != nil || got.RemoteTools.PermittedViewers != nil || !reflect.DeepEqual(got, partial) {
		t.Fatalf("nil section or setting not kept nil: %+v", got)
	}
}
