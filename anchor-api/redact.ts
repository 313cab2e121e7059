/**
 * Removes URLs from text the API wrote (session errors, messages). A session's
 * URLs hand over control of a live browser, and free text could quote one;
 * such text is stored in Temporal history, so it is cleaned before it leaves
 * the activity.
 */
export function redactUrls(text: string): string {
  return text.replace(/\b(?:wss?|https?):\/\/\S+/gi, '[url removed]');
}
