/** A route's answer that is not JSON (a CSV export, an HTML report): sent as it is, with its content type. */
export class RawReply {
  constructor(
    readonly contentType: string,
    readonly body: string,
    /** Offered as the file name to save it under (Content-Disposition). */
    readonly filename?: string,
  ) {}
}
