import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

// The Web UI lists and filters recoveries by these; the dev server and the
// docker-compose setup register exactly this set.
export const anchorBatchIdKey = defineSearchAttributeKey('AnchorBatchId', SearchAttributeType.KEYWORD);
export const recoveryOutcomeKey = defineSearchAttributeKey('RecoveryOutcome', SearchAttributeType.KEYWORD);
export const recoveryRoundsKey = defineSearchAttributeKey('RecoveryRounds', SearchAttributeType.INT);
export const retriedSessionsKey = defineSearchAttributeKey('RetriedSessions', SearchAttributeType.INT);
export const stillFailedSessionsKey = defineSearchAttributeKey('StillFailedSessions', SearchAttributeType.INT);
/** When the recovery must have ended: visibility finds the ones still running past it (worker/past-deadline-gauge.ts). */
export const recoveryDeadlineKey = defineSearchAttributeKey('RecoveryDeadline', SearchAttributeType.DATETIME);

/** Set by the server on each workflow a schedule starts (not registered by us): which schedule started it. */
export const scheduledByIdKey = defineSearchAttributeKey('TemporalScheduledById', SearchAttributeType.KEYWORD);

export const recoverySearchAttributes = [
  anchorBatchIdKey,
  recoveryOutcomeKey,
  recoveryRoundsKey,
  retriedSessionsKey,
  stillFailedSessionsKey,
  recoveryDeadlineKey,
] as const;
