import java.util.*;
public class Doubler {
  public static void main(String[] a) {
    System.out.println(2 * new Scanner(System.in).nextInt());
  }
}
