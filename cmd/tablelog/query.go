package main

import (
	"bufio"
	"context"
	"fmt"
)

const queryUsage = `
Usage: tablelog query [-s SERVICE]... [flags]

Prints the records that match, newest first, up to --limit. The filters are
those of tail: --since/--until bound the time (the server reads only the
day partitions and key ranges in between), --level and --where run on the
server, --grep on the client. Without -s, every service in the catalog is
searched and the results are merged by time.

Examples:

	tablelog query -s checkout --since 1h --level error
	tablelog query -s checkout --since 2025-11-24 --until 2025-11-25 --limit 0 -o json > day.jsonl
	tablelog query -s checkout --where 'user_id="u-1" and (status>=500 or level>=error)'
	tablelog query --where 'request_id=req-42' --since 7d     # every service
	tablelog query -s checkout --where 'duration>2.5 and http.method=POST' -o logfmt

See 'tablelog tail --help' for the --where syntax and the time forms.
`

func (a *app) query(ctx context.Context, args []string) error {
	fs := a.newFlagSet("query", queryUsage)
	var cf connFlags
	var ff filterFlags
	ff.register(fs)
	limit := fs.Int("limit", 100, "most records to print; 0 for no limit")
	cf.register(fs)
	sel, err := a.parseFilters(fs, "query", &ff, args)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return usagef("query", "--limit must not be negative")
	}
	r, services, err := a.openLogs(ctx, "query", cf, &sel)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(a.stdout)
	defer out.Flush()
	perService := 0
	if *limit > 0 {
		perService = *limit + 1 // one more tells whether there are more
	}
	printed := 0
	for rec, err := range newestFirst(ctx, r, services, sel.q, sel.grep, perService) {
		if err != nil {
			return err
		}
		if *limit > 0 && printed == *limit {
			if err := out.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "tablelog query: showing the newest %d records; there are more (--limit N, or --limit 0 for all)\n", *limit)
			return nil
		}
		if err := sel.fmt.write(out, &rec); err != nil {
			return err
		}
		printed++
	}
	return out.Flush()
}
