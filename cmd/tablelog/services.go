package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/tablelog/tablelog/internal/fieldtext"
	"github.com/tablelog/tablelog/query"
)

const servicesUsage = `
Usage: tablelog services [-s SERVICE]... [--days] [-o text|json]

Lists the services that have logs in the logs table and the UTC days they
have logs for, from the catalog the sink writes (one small partition; the
logs themselves are not read).

Examples:

	tablelog services
	tablelog services --days -s checkout        # one line per day
	tablelog services -o json | jq -r .service
`

// serviceDays is one line of json output.
type serviceDays struct {
	Service string   `json:"service"`
	Days    []string `json:"days"`
}

func (a *app) services(ctx context.Context, args []string) error {
	fs := a.newFlagSet("services", servicesUsage)
	var cf connFlags
	var only stringList
	fs.Var(&only, "s", "only these services (repeatable, or comma-separated)")
	fs.Var(&only, "service", "same as -s")
	days := fs.Bool("days", false, "print every day, one line per service and day")
	output := fs.String("o", formatText, "output format: text or json (one object per service)")
	fs.StringVar(output, "output", formatText, "same as -o")
	cf.register(fs)
	pos, err := a.parseFlags(fs, "services", args)
	if err != nil {
		return err
	}
	if only, err = serviceArgs("services", only, pos); err != nil {
		return err
	}
	if *output != formatText && *output != formatJSON {
		return usagef("services", "-o must be text or json, not %q", *output)
	}
	t, err := a.connect("services", cf)
	if err != nil {
		return err
	}
	r := query.New(t.logs)
	services := []string(only)
	if len(services) == 0 {
		if services, err = r.Services(ctx); err != nil {
			return err
		}
	}
	// Text is a table in columns two spaces apart (the services and days
	// are few: tabwriter holds them until the end).
	out := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	defer out.Flush()
	if *output == formatText && !*days {
		fmt.Fprintf(out, "SERVICE\tDAYS\tFIRST\tLAST\n")
	}
	for _, s := range services {
		ds, err := r.Days(ctx, s)
		if err != nil {
			return err
		}
		switch {
		case *output == formatJSON:
			sd := serviceDays{Service: s, Days: make([]string, len(ds))}
			for i, d := range ds {
				sd.Days[i] = d.Format(time.DateOnly)
			}
			js, err := fieldtext.Marshal(sd)
			if err != nil {
				return err
			}
			out.Write(append(js, '\n'))
		case *days:
			for _, d := range ds {
				fmt.Fprintf(out, "%s\t%s\n", s, d.Format(time.DateOnly))
			}
		default:
			first, last := "-", "-"
			if len(ds) > 0 {
				first, last = ds[0].Format(time.DateOnly), ds[len(ds)-1].Format(time.DateOnly)
			}
			fmt.Fprintf(out, "%s\t%d\t%s\t%s\n", s, len(ds), first, last)
		}
	}
	return out.Flush()
}
