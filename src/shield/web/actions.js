// Operator actions on a deployment: cancel while it runs, roll back once it finished.
import { api } from './api.js';
import { ACTIVE, h } from './dom.js';

const CONFIRM_MS = 5000;

/** A button that asks for a second click before it acts. */
function confirmButton(label, confirmLabel, action) {
  let armed;
  const button = h('button', { type: 'button', class: 'action' }, label);
  button.addEventListener('click', async () => {
    if (!armed) {
      button.textContent = confirmLabel;
      button.classList.add('armed');
      armed = setTimeout(() => {
        armed = undefined;
        button.textContent = label;
        button.classList.remove('armed');
      }, CONFIRM_MS);
      return;
    }
    clearTimeout(armed);
    armed = undefined;
    button.classList.remove('armed');
    button.textContent = label;
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** The buttons that fit a deployment's status, and where their outcome is shown. */
export function deploymentActions(record) {
  const result = h('span', { class: 'action-result', role: 'status' });
  const call = (verb, path) => async () => {
    result.textContent = `${verb}…`;
    result.className = 'action-result';
    try {
      const answer = await api(path, { method: 'POST', body: {} });
      result.textContent = `${verb} requested (${answer.status ?? 'accepted'})`;
    } catch (error) {
      result.textContent = `${verb} failed: ${error.message}`;
      result.className = 'action-result error';
    }
  };
  const id = encodeURIComponent(record.id);
  const buttons = [];
  if (ACTIVE.has(record.status)) {
    buttons.push(confirmButton('Cancel', 'Confirm cancel', call('cancel', `/api/deployments/${id}/cancel`)));
  }
  if (record.status === 'SUCCESS' || record.status === 'FAILURE') {
    buttons.push(
      confirmButton('Roll back', 'Confirm roll back', call('rollback', `/api/deployments/${id}/rollback`)),
    );
  }
  return h('div', { class: 'actions' }, buttons, result);
}
