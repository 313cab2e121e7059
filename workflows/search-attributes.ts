import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

// The Web UI lists and filters recoveries by these; the dev server and the
// docker-compose setup register exactly this set.
export const anchorBatchIdKey = defineSearchAttributeKey('AnchorBatchId', SearchAttributeType.KEYWORD);
export const recoveryOutcomeKey = defineSearchAttributeKey('RecoveryOutcome', SearchAttributeType.KEYWORD);
export const recoveryRoundsKey = defineSearchAttributeKey('RecoveryRounds', SearchAttributeType.INT);
export const retriedSessionsKey = defineSearchAttributeKey('RetriedSessions', SearchAttributeType.INT);
export const stillFailedSessionsKey = defineSearchAttributeKey('StillFailedSessions', SearchAttributeType.INT);

export const recoverySearchAttributes = [
  anchorBatchIdKey,
  recoveryOutcomeKey,
  recoveryRoundsKey,
  retriedSessionsKey,
  stillFailedSessionsKey,
] as const;
