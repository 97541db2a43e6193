package api

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"connectrpc.com/connect"

	"github.com/obelisk-go/obelisk/actors"
	apiv1 "github.com/obelisk-go/obelisk/proto/obelisk/v1"
)

// schedules serves ScheduleService.
type schedules struct{ e *actors.Engine }

func (h *schedules) CreateSchedule(ctx context.Context, req *connect.Request[apiv1.CreateScheduleRequest]) (*connect.Response[apiv1.CreateScheduleResponse], error) {
	m := req.Msg
	rec, err := h.e.CreateSchedule(ctx, actors.ScheduleConfig{
		Name: m.Name, Cron: m.Cron, TimeZone: m.TimeZone, FFQN: m.Ffqn, Params: json.RawMessage(m.ParamsJson),
		CatchUp: m.CatchUp, Component: m.Component,
	})
	if err != nil {
		return nil, scheduleError(err)
	}
	info, err := h.info(ctx, rec.Name)
	if err != nil {
		return nil, scheduleError(err)
	}
	return connect.NewResponse(&apiv1.CreateScheduleResponse{Schedule: info}), nil
}

func (h *schedules) ListSchedules(ctx context.Context, _ *connect.Request[apiv1.ListSchedulesRequest]) (*connect.Response[apiv1.ListSchedulesResponse], error) {
	list, err := h.e.Schedules(ctx)
	if err != nil {
		return nil, scheduleError(err)
	}
	resp := &apiv1.ListSchedulesResponse{}
	for _, s := range list {
		resp.Schedules = append(resp.Schedules, scheduleInfo(s))
	}
	return connect.NewResponse(resp), nil
}

func (h *schedules) DeleteSchedule(ctx context.Context, req *connect.Request[apiv1.DeleteScheduleRequest]) (*connect.Response[apiv1.DeleteScheduleResponse], error) {
	if err := h.e.DeleteSchedule(ctx, req.Msg.Name); err != nil {
		return nil, scheduleError(err)
	}
	return connect.NewResponse(&apiv1.DeleteScheduleResponse{}), nil
}

func (h *schedules) PauseSchedule(ctx context.Context, req *connect.Request[apiv1.PauseScheduleRequest]) (*connect.Response[apiv1.PauseScheduleResponse], error) {
	info, err := h.pause(ctx, req.Msg.Name, true)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&apiv1.PauseScheduleResponse{Schedule: info}), nil
}

func (h *schedules) ResumeSchedule(ctx context.Context, req *connect.Request[apiv1.ResumeScheduleRequest]) (*connect.Response[apiv1.ResumeScheduleResponse], error) {
	info, err := h.pause(ctx, req.Msg.Name, false)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&apiv1.ResumeScheduleResponse{Schedule: info}), nil
}

func (h *schedules) pause(ctx context.Context, name string, paused bool) (*apiv1.ScheduleInfo, error) {
	if _, err := h.e.PauseSchedule(ctx, name, paused); err != nil {
		return nil, scheduleError(err)
	}
	info, err := h.info(ctx, name)
	if err != nil {
		return nil, scheduleError(err)
	}
	return info, nil
}

// info returns a schedule as listed (with its next firing).
func (h *schedules) info(ctx context.Context, name string) (*apiv1.ScheduleInfo, error) {
	list, err := h.e.Schedules(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range list {
		if s.Record.Name == name {
			return scheduleInfo(s), nil
		}
	}
	return nil, &actors.ScheduleNotFoundError{Name: name}
}

func scheduleInfo(s actors.ScheduleInfo) *apiv1.ScheduleInfo {
	r := s.Record
	tz := r.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	info := &apiv1.ScheduleInfo{
		Name: r.Name, Cron: r.Cron, TimeZone: tz, Ffqn: r.Ffqn, ParamsJson: string(r.Params), CatchUp: r.CatchUp,
		Component: r.Component, Source: r.Source, Paused: r.Paused, LastFiring: rfc3339(r.LastFiredAt),
		LastExecutionId: r.LastExecutionId, CreatedAt: rfc3339(r.CreatedAt),
	}
	if !s.NextFiring.IsZero() {
		info.NextFiring = s.NextFiring.UTC().Format(time.RFC3339Nano)
	}
	return info
}

// scheduleError maps the engine's errors; a schedule that is not found is not_found.
func scheduleError(err error) error {
	var nf *actors.ScheduleNotFoundError
	if errors.As(err, &nf) {
		return connect.NewError(connect.CodeNotFound, err)
	}
	return apiError(err)
}
