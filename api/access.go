package api

import (
	"github.com/obelisk-go/obelisk/auth"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
)

// ProcedureAccess classifies every RPC of the API as reading or writing: a read token
// may call only the reading ones. It is the one table of it; TestEveryRPCIsClassified
// fails when an RPC of api.proto is missing from it. An RPC missing anyway is taken as
// writing (auth.Write), so that a new RPC is never open to read tokens by omission.
func ProcedureAccess(procedure string) (access auth.Access, classified bool) {
	switch procedure {
	case obeliskv1connect.ExecutionServiceGetStatusProcedure,
		obeliskv1connect.ExecutionServiceListExecutionsProcedure,
		obeliskv1connect.ExecutionServiceListEventsProcedure,
		obeliskv1connect.ExecutionServiceListResponsesProcedure,
		obeliskv1connect.ExecutionServiceWatchEventsProcedure,
		obeliskv1connect.ExecutionServiceGetLogsProcedure,
		obeliskv1connect.ExecutionServiceListRetentionProcedure,
		obeliskv1connect.ComponentServiceListComponentsProcedure,
		obeliskv1connect.ComponentServiceGetComponentProcedure,
		obeliskv1connect.ScheduleServiceListSchedulesProcedure,
		obeliskv1connect.ClusterServiceGetClusterStatusProcedure:
		return auth.Read, true
	case obeliskv1connect.ExecutionServiceSubmitProcedure,
		obeliskv1connect.ExecutionServiceCancelProcedure,
		obeliskv1connect.ExecutionServicePauseProcedure,
		obeliskv1connect.ExecutionServiceUnpauseProcedure,
		obeliskv1connect.ExecutionServiceStubProcedure,
		obeliskv1connect.ExecutionServiceDeleteProcedure,
		obeliskv1connect.ExecutionServiceForkProcedure,
		obeliskv1connect.ExecutionServiceUpgradeProcedure,
		// A replay writes nothing, but it runs code the caller may send (a .wasm file):
		// that is an admin's to do; so is a verification, which replays every workflow.
		obeliskv1connect.ExecutionServiceReplayProcedure,
		obeliskv1connect.ExecutionServiceVerifyProcedure,
		obeliskv1connect.ScheduleServiceCreateScheduleProcedure,
		obeliskv1connect.ScheduleServiceDeleteScheduleProcedure,
		obeliskv1connect.ScheduleServicePauseScheduleProcedure,
		obeliskv1connect.ScheduleServiceResumeScheduleProcedure,
		// A worker writes results, as Stub does: an admin token (docs/RATIONALE.md).
		obeliskv1connect.WorkerServiceLockProcedure,
		obeliskv1connect.WorkerServiceRenewProcedure,
		obeliskv1connect.WorkerServiceCompleteProcedure:
		return auth.Write, true
	}
	return auth.Write, false
}

// access is ProcedureAccess for the token guard (auth.Tokens.RPC).
func access(procedure string) auth.Access {
	a, _ := ProcedureAccess(procedure)
	return a
}
