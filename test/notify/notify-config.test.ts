import { loadWorkerConfig } from '../../worker/config.js';
import { InvalidInputError } from '../../workflows/input.js';

const base = { ANCHOR_API_KEY: 'key' };

test('without NOTIFY_WEBHOOK_URL nothing is notified', () => {
  expect(loadWorkerConfig(base).notify).toBeUndefined();
});

test('the webhook, the outcomes (default exhausted, deadline, failed) and the Web UI link come from the environment', () => {
  const url = 'https://hooks.slack.com/services/T0/B0/secret';

  expect(loadWorkerConfig({ ...base, NOTIFY_WEBHOOK_URL: url }).notify).toEqual({
    webhookUrl: url,
    outcomes: ['exhausted', 'deadline', 'failed'],
  });
  expect(
    loadWorkerConfig({
      ...base,
      NOTIFY_WEBHOOK_URL: url,
      NOTIFY_OUTCOMES: 'exhausted, operator_cancelled',
      TEMPORAL_UI_URL: 'https://temporal.example.com',
    }).notify,
  ).toEqual({ webhookUrl: url, outcomes: ['exhausted', 'operator_cancelled'], uiUrl: 'https://temporal.example.com' });
});

test('a bad webhook URL or outcome is named', () => {
  const load = () =>
    loadWorkerConfig({ ...base, NOTIFY_WEBHOOK_URL: 'hooks.slack.com/x', NOTIFY_OUTCOMES: 'exhausted,recovered' });

  expect(load).toThrow(InvalidInputError);
  expect(load).toThrow(/NOTIFY_WEBHOOK_URL: expected an http\(s\) URL/);
  expect(load).toThrow(/NOTIFY_OUTCOMES\.1: /);
});

test('a webhook URL with a user name or password is refused (a webhook takes its secret in its path), without echoing it', () => {
  const load = () => loadWorkerConfig({ ...base, NOTIFY_WEBHOOK_URL: 'https://ops:hunter2@hooks.example.com/x' });

  expect(load).toThrow(/NOTIFY_WEBHOOK_URL: expected no user name or password in the URL/);
  expect(load).not.toThrow(/hunter2/);
});

test('a Web UI URL with a user name or password is refused (the link is posted to the webhook), without echoing it', () => {
  const load = () =>
    loadWorkerConfig({
      ...base,
      NOTIFY_WEBHOOK_URL: 'https://hooks.slack.com/services/T0/B0/secret',
      TEMPORAL_UI_URL: 'https://ops:hunter2@temporal.example.com',
    });

  expect(load).toThrow(/TEMPORAL_UI_URL: expected no user name or password in the URL/);
  expect(load).not.toThrow(/hunter2/);
});

test('a Web UI URL with a query or fragment is refused (every link would be broken), without echoing it; a path is kept', () => {
  const load = (uiUrl: string) => () =>
    loadWorkerConfig({
      ...base,
      NOTIFY_WEBHOOK_URL: 'https://hooks.slack.com/services/T0/B0/secret',
      TEMPORAL_UI_URL: uiUrl,
    });

  for (const uiUrl of [
    'https://temporal.example.com/?token=hunter2',
    'https://temporal.example.com/ui#hunter2',
    'https://temporal.example.com/?',
    'https://temporal.example.com#',
  ]) {
    expect(load(uiUrl)).toThrow(InvalidInputError);
    expect(load(uiUrl)).toThrow(
      /^[^]*TEMPORAL_UI_URL: expected no query or fragment in the URL \(each link adds \/namespaces\/<namespace>\/workflows\/<id> to it\)$/,
    );
    expect(load(uiUrl)).not.toThrow(/hunter2|temporal\.example/);
  }
  expect(load('https://temporal.example.com/ui/')().notify?.uiUrl).toBe('https://temporal.example.com/ui/');
});
