from multiprocessing import Process
import math

def calc_square(numbers):
    """Calculate the squares of the input set of numbers"""
    squares = [i*i for i in numbers]
    print("Squares: {0}".format(squares))
def calc_square_root(numbers):
    """Calculate the square roots of the input set of numbers"""
    square_roots = [round(math.sqrt(i), 2) for i in numbers]
    print("Square Roots: {0}".format(square_roots))
if __name__ == "__main__":
    number_set = list(range(1,11))
    # Create the Processes
    p1 = Process(target=calc_square, args=(number_set,))
    p2 = Process(target=calc_square_root, args=(number_set,))

    # Start the Processes
    p1.start()
    p2.start()
    p1.join()
    p2.join()

# Note: (1) is considered as int, whereas (1,) is considered as a tuple in python. So, in case 
# of a single argument an extra comma must be placed to project it as a tuple
